"""`Dropout`: `nn.Dropout` whose CPU training mask is drawn with `torch.rand` (faster than `bernoulli_`,
docs/speed.md), with the same keep probability 1 - p and scale 1 / (1 - p); masks differ from
`nn.Dropout`'s for the same seed. `WordDropout` drops whole tokens: one draw per token. `LockedDropout`
(variational dropout) draws one mask per sequence, the same at every step.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from seqsent.errors import SettingError


def drop(x: Tensor, p: float, mask_shape: torch.Size) -> Tensor:
    """`x` times a `rand >= p` mask of `mask_shape` (broadcast over `x`), kept entries scaled by 1 / (1 - p)."""
    mask = torch.rand(mask_shape, dtype=torch.float32, device=x.device)
    mask.ge_(p).div_(1.0 - p)  # 1 / (1 - p) where kept, 0 where dropped
    return x * mask.to(x.dtype)


class Dropout(nn.Dropout):
    """Drop-in `nn.Dropout` (same arguments, no state) whose CPU training mask is `rand >= p`."""

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0 or self.p >= 1.0 or x.device.type != "cpu" or self.inplace:
            return super().forward(x)
        return drop(x, self.p, x.shape)


class WordDropout(nn.Module):
    """Zero each token's embedding vector (B, T, E) with probability p in training, scale the rest by 1 / (1 - p)."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise SettingError(f"word dropout p={p}: use a probability in [0, 1)")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        return drop(x, self.p, x.shape[:-1] + (1,))

    def extra_repr(self) -> str:
        return f"p={self.p}"


class LockedDropout(nn.Module):
    """Variational dropout (Gal & Ghahramani 2016, AWD-LSTM's "locked" dropout): in training, one mask per
    sequence and feature, the same at every step of the time axis `dim` (1: (B, T, H); 0: (T, B, H)),
    kept entries scaled by 1 / (1 - p)."""

    def __init__(self, p: float = 0.0, dim: int = 1):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise SettingError(f"locked dropout p={p}: use a probability in [0, 1)")
        self.p, self.dim = p, dim

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        shape = list(x.shape)
        shape[self.dim] = 1
        return drop(x, self.p, torch.Size(shape))

    def extra_repr(self) -> str:
        return f"p={self.p}, dim={self.dim}"
