"""`CNNEncoder`: Kim (2014)'s convolutional sentence encoder over left-aligned word vectors."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from seqsent.errors import SettingError
from seqsent.models.pooling import masked_pool, step_mask


class CNNEncoder(nn.Module):
    """Parallel 1-D convolutions of several widths, each with ReLU and max-over-time pooling over the
    windows that hold at least one true step (Kim 2014); their maxima concatenated.

    The convolutions are wide: each review is read with `width - 1` zero vectors on either side (as
    Kim's code pads sentences), so a review shorter than a filter still gets `length + width - 1`
    windows, and the padding after a review is zeroed first: it never changes the output.

    Args:
        input_size: size of the input vectors.
        widths: filter widths (steps per window), one convolution each.
        channels: filters per width; `output_size = len(widths) * channels`.
    """

    def __init__(self, input_size: int, widths: Sequence[int] = (3, 4, 5), channels: int = 100):
        super().__init__()
        listed = isinstance(widths, Sequence) and not isinstance(widths, str) and len(widths) > 0
        if not listed or not all(isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in widths):
            raise SettingError(f"widths={widths!r}: use a list of one or more whole numbers >= 1, e.g. [3, 4, 5]")
        widths = tuple(widths)
        if input_size < 1 or channels < 1:
            raise SettingError(f"input_size={input_size}, channels={channels}: use >= 1")
        self.widths, self.channels = widths, channels
        self.convs = nn.ModuleList(nn.Conv1d(input_size, channels, w, padding=w - 1) for w in widths)
        self.output_size = len(widths) * channels

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        """Left-aligned inputs (B, T, input_size) with true `lengths` -> (B, len(widths) * channels)."""
        lengths = lengths.to(x.device)
        x = x.masked_fill(~step_mask(lengths, x.size(1)).unsqueeze(-1), 0).transpose(1, 2)  # (B, D, T)
        pooled = [
            masked_pool(torch.relu(conv(x)).transpose(1, 2), lengths + conv.kernel_size[0] - 1, "max")
            for conv in self.convs
        ]
        return torch.cat(pooled, dim=-1)
