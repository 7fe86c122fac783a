"""`masked_pool`: the one pooling over true steps that every encoder uses (padding never read)."""

from __future__ import annotations

import torch
from torch import Tensor

POOLINGS = ("last", "mean", "max", "concat")  # concat: [last, max, mean] side by side, (B, 3H) (ULMFiT's)


def step_mask(lengths: Tensor, steps: int, dim: int = 1) -> Tensor:
    """Bool mask, True at each row's first `lengths[b]` steps (its true, left-aligned steps): (B, steps)
    for the time axis `dim=1`, (steps, B) for `dim=0`."""
    return torch.arange(steps, device=lengths.device).unsqueeze(1 - dim) < lengths.unsqueeze(dim)


def masked_pool(states: Tensor, lengths: Tensor, how: str, dim: int = 1) -> Tensor:
    """Pool left-aligned per-step states (B, T, H) over each row's first `lengths[b]` steps to (B, H).

    `how`: "last" (the state at step `lengths[b] - 1`), "mean", "max", or "concat" (last, max and mean
    concatenated: (B, 3H), ULMFiT's concat pooling). `dim` is the time axis
    (1: (B, T, H); 0: time-major (T, B, H)). The padding positions may hold any finite values: they
    never change the result."""
    if how not in POOLINGS:
        raise ValueError(f"pooling {how!r}: use one of {POOLINGS}")
    lengths = lengths.to(states.device)
    if how == "concat":
        return torch.cat([masked_pool(states, lengths, part, dim) for part in ("last", "max", "mean")], dim=-1)
    if how == "last":
        last, rows = (lengths - 1).clamp(min=0), torch.arange(states.size(1 - dim), device=states.device)
        return states[rows, last] if dim == 1 else states[last, rows]
    mask = step_mask(lengths, states.size(dim), dim).unsqueeze(-1)
    if how == "mean":  # a product keeps the states' memory layout, so the sum adds in their order
        return (states * mask).sum(dim) / mask.sum(dim).clamp(min=1)
    return states.masked_fill(~mask, float("-inf")).max(dim).values
