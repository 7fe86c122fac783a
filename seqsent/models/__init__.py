"""Models: recurrent encoders (plain nn.Modules) and the Lightning classifier."""

from seqsent.models.classifier import SequenceClassifier
from seqsent.models.encoders import CELLS, RecurrentEncoder, left_align, reverse_within_lengths
from seqsent.models.scratch_lstm import ScratchLSTM

__all__ = ["CELLS", "RecurrentEncoder", "ScratchLSTM", "SequenceClassifier", "left_align", "reverse_within_lengths"]
