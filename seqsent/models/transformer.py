"""`TransformerEncoder`: a small pre-norm Transformer over left-aligned vectors, with a key-padding
mask and masked pooling; attention runs through PyTorch's fused `scaled_dot_product_attention`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from seqsent.errors import SettingError
from seqsent.models.pooling import masked_pool, step_mask

POSITIONS = ("learned", "sinusoidal")
TRANSFORMER_POOLINGS = ("mean", "max", "cls")


class TransformerEncoder(nn.Module):
    """Input projection, positions, `num_layers` pre-norm blocks (self-attention, then a GELU
    feed-forward, each added to its input) and a final LayerNorm, pooled over the true steps.

    Padded steps are zeroed and never attended to (a key-padding mask), so they never change the output.

    Args:
        input_size: size of the input vectors; projected to `d_model` when they differ.
        d_model: width of the blocks; `output_size = d_model`.
        num_layers: blocks.
        num_heads: attention heads (they divide `d_model`).
        ff_size: hidden units of each feed-forward.
        dropout: on the input vectors (after positions) and on each block's two outputs.
        attention_dropout: on the attention weights (on the CPU a nonzero value runs the slower
            unfused attention).
        positions: "learned" (one trained vector per step, up to `max_len` steps) or "sinusoidal"
            (fixed, Vaswani et al. 2017, any length).
        max_len: the longest input learned positions cover (a longer batch is an error).
        pooling: "mean" or "max" over the true steps, or "cls" (the output at a trained vector
            put before each review).
    """

    def __init__(
        self,
        input_size: int,
        d_model: int = 128,
        num_layers: int = 2,
        num_heads: int = 4,
        ff_size: int = 512,
        dropout: float = 0.1,
        attention_dropout: float = 0.0,
        positions: str = "learned",
        max_len: int = 512,
        pooling: str = "mean",
    ):
        super().__init__()
        check_settings(locals())
        self.positions, self.max_len, self.pooling, self.output_size = positions, max_len, pooling, d_model
        self.project = nn.Linear(input_size, d_model) if input_size != d_model else nn.Identity()
        self.cls = nn.Parameter(torch.randn(d_model) * 0.02) if pooling == "cls" else None
        self.position = nn.Embedding(max_len, d_model) if positions == "learned" else None
        if self.position is not None:
            nn.init.normal_(self.position.weight, std=0.02)
        self.dropout = nn.Dropout(dropout)
        block = (d_model, num_heads, ff_size, dropout, attention_dropout)
        self.layers = nn.ModuleList(Block(*block) for _ in range(num_layers))
        self.norm = nn.LayerNorm(d_model)

    def states(self, x: Tensor, lengths: Tensor) -> Tensor:
        """The top block's outputs at the review's steps (B, T, d_model), after the final LayerNorm
        (without the CLS step)."""
        out = self._encode(x, lengths)
        return out[:, 1:] if self.cls is not None else out

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        """Left-aligned inputs (B, T, input_size) with true `lengths` -> (B, d_model)."""
        out = self._encode(x, lengths)
        return out[:, 0] if self.cls is not None else masked_pool(out, lengths, self.pooling)

    def _encode(self, x: Tensor, lengths: Tensor) -> Tensor:
        """(B, T', d_model) outputs, T' = T + 1 with a CLS step first."""
        lengths = lengths.to(x.device)
        x = self.project(x.masked_fill(~step_mask(lengths, x.size(1)).unsqueeze(-1), 0))
        if self.cls is not None:
            x, lengths = torch.cat([self.cls.expand(x.size(0), 1, -1), x], dim=1), lengths + 1
        x = self.dropout(x + self._position_vectors(x.size(1), x))
        mask = step_mask(lengths, x.size(1))[:, None, None, :]  # (B, 1, 1, T'): keys a query may attend to
        for layer in self.layers:
            x = layer(x, mask)
        return self.norm(x)

    def _position_vectors(self, steps: int, like: Tensor) -> Tensor:
        if self.position is None:
            return sinusoidal(steps, like.size(-1)).to(like)
        if steps > self.max_len:
            raise SettingError(
                f"a batch of {steps} steps is longer than model.encoder.max_len={self.max_len} (learned positions): "
                "raise model.encoder.max_len above data.max_len, or use model.encoder.positions=sinusoidal"
            )
        return self.position.weight[:steps]


class Block(nn.Module):
    """One pre-norm Transformer block: x + attention(norm(x)), then x + feed-forward(norm(x))."""

    def __init__(self, d_model: int, num_heads: int, ff_size: int, dropout: float, attention_dropout: float):
        super().__init__()
        self.num_heads, self.attention_dropout = num_heads, attention_dropout
        self.attention_norm = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.attention_out = nn.Linear(d_model, d_model)
        self.ff_norm = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(nn.Linear(d_model, ff_size), nn.GELU(), nn.Linear(ff_size, d_model))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """x (B, T, d_model); mask (B, 1, 1, T) bool, True at the keys each query may attend to."""
        b, t, d = x.shape
        q, k, v = self.qkv(self.attention_norm(x)).view(b, t, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        p = self.attention_dropout if self.training else 0.0
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        x = x + self.dropout(self.attention_out(attended.transpose(1, 2).reshape(b, t, d)))
        return x + self.dropout(self.ff(self.ff_norm(x)))


def sinusoidal(steps: int, width: int) -> Tensor:
    """Fixed position vectors (steps, width): sin and cos of the step at geometric frequencies."""
    position = torch.arange(steps, dtype=torch.float32).unsqueeze(1)
    frequency = torch.exp(torch.arange(0, width, 2, dtype=torch.float32) * (-math.log(10_000.0) / width))
    vectors = torch.zeros(steps, width)
    vectors[:, 0::2] = torch.sin(position * frequency)
    vectors[:, 1::2] = torch.cos(position * frequency)[:, : width // 2]
    return vectors


def check_settings(v: Mapping[str, Any]) -> None:
    """A one-line `SettingError` for the first setting out of range."""
    if v["positions"] not in POSITIONS:
        raise SettingError(f"positions={v['positions']!r}: use one of {POSITIONS}")
    if v["pooling"] not in TRANSFORMER_POOLINGS:
        raise SettingError(f"pooling={v['pooling']!r}: use one of {TRANSFORMER_POOLINGS}")
    if min(v["input_size"], v["d_model"], v["num_layers"], v["num_heads"], v["ff_size"], v["max_len"]) < 1:
        raise SettingError("input_size, d_model, num_layers, num_heads, ff_size and max_len must be >= 1")
    if v["d_model"] % v["num_heads"]:
        raise SettingError(f"d_model={v['d_model']}, num_heads={v['num_heads']}: use heads that divide d_model")
    for key in ("dropout", "attention_dropout"):
        if not 0.0 <= v[key] < 1.0:
            raise SettingError(f"{key}={v[key]}: use a value in [0, 1)")
