"""Models: the network (`TextClassifierNet`: embedding front end, encoder, head), its encoders (plain
nn.Modules, chosen by name from the registry) and the Lightning classifier."""

from seqsent.models.classifier import SequenceClassifier
from seqsent.models.encoders import CELLS, RecurrentEncoder, left_align, reverse_within_lengths
from seqsent.models.network import TextClassifierNet
from seqsent.models.pooling import masked_pool
from seqsent.models.registry import ENCODERS, build_encoder, register_encoder
from seqsent.models.scratch_lstm import ScratchLSTM

__all__ = [
    "CELLS",
    "ENCODERS",
    "RecurrentEncoder",
    "ScratchLSTM",
    "SequenceClassifier",
    "TextClassifierNet",
    "build_encoder",
    "left_align",
    "masked_pool",
    "register_encoder",
    "reverse_within_lengths",
]
