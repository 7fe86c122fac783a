"""`NBOWEncoder`: a neural bag of words, the mean (and/or max) of the input vectors (fastText-style)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from seqsent.errors import SettingError
from seqsent.models.pooling import masked_pool

NBOW_POOLINGS = ("mean", "max", "mean_max")


class NBOWEncoder(nn.Module):
    """The mean, the max, or both concatenated (`mean_max`) of each review's true input vectors (its
    word and n-gram vectors); no weights of its own. With the network's linear head this is fastText
    (Joulin et al. 2017) for `mean` over word and bigram vectors.

    Args:
        input_size: size of the input vectors.
        pooling: "mean", "max" or "mean_max"; `output_size` is `input_size` (twice that for mean_max).
    """

    def __init__(self, input_size: int, pooling: str = "mean"):
        super().__init__()
        if pooling not in NBOW_POOLINGS:
            raise SettingError(f"pooling={pooling!r}: use one of {NBOW_POOLINGS}")
        self.pooling = pooling
        self.output_size = input_size * (2 if pooling == "mean_max" else 1)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        """Left-aligned inputs (B, T, input_size) with true `lengths` -> (B, output_size)."""
        return torch.cat([masked_pool(x, lengths, how) for how in self.pooling.split("_")], dim=-1)
