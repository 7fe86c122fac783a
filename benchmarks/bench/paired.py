"""The LSTM training step's FLOP fraction with the matmul rate measured beside it, round by round.

A shared virtual machine's speed drifts within one session, the matmul rate and an LSTM step alike
(docs/speed.md). `lstm_train_flops_fraction` divides a rate measured over seconds of steps by a
matmul rate measured seconds to minutes earlier, so it carries that drift. Here each round times the matmul and then the
same seed LSTM steps right after it; the median of the rounds' ratios compares the two under the
same conditions, and the spread of the rounds shows how much the machine moved.
"""

from __future__ import annotations

import statistics
from typing import Any

import torch

from seqsent.data import IMDBDataModule

from .throughput import (
    matmul_gflops,
    sample_batches,
    seed_model,
    time_steps,
    to_device,
    train_gate_flops,
    train_step,
)


def paired_lstm_fraction(
    dm: IMDBDataModule,
    sizes: dict[str, int],
    device: torch.device,
    rounds: int = 7,
    steps: int = 10,
    batch_size: int = 32,
    matmul_size: int = 2048,
    warmup: int = 3,
    seed: int = 0,
) -> dict[str, Any]:
    """Median over `rounds` of (seed LSTM training steps' gate-matmul rate) / (fp32 matmul rate, the
    faster of torch_mm and oneDNN, best of 3, measured just before those `steps` steps)."""
    if rounds < 1 or steps < 1:
        raise ValueError("rounds and steps must be >= 1")
    batches = [to_device(b, device) for b in sample_batches(dm.train_set, dm.collator, batch_size, steps, seed)]
    model = seed_model("lstm", sizes, seed)
    step = train_step(model, device)
    for batch in batches[:warmup]:
        step(batch)
    flops = train_gate_flops(model, batches)
    fractions, matmul_rates, step_rates = [], [], []
    for _ in range(rounds):
        matmul = max(matmul_gflops(device, matmul_size, repeats=3).values())
        rate = flops / time_steps(step, batches, device)[0] / 1e9
        fractions.append(rate / matmul)
        matmul_rates.append(matmul)
        step_rates.append(rate)
    return {
        "fraction_median": statistics.median(fractions),
        "fractions": fractions,
        "matmul_gflops": matmul_rates,
        "train_gate_gflops": step_rates,
        "rounds": rounds,
        "steps_per_round": steps,
        "batch_size": batch_size,
    }
