"""Throughput: the fp32 matmul rate and training/inference rates of each cell."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from seqsent.data import IMDBDataModule
from seqsent.data.batching import Batch, BucketBatchSampler, Collator, EncodedReviews
from seqsent.models import SequenceClassifier
from seqsent.models.encoders import CELLS

from .common import (
    EPOCH_REVIEWS,
    GATES,
    autocast,
    current_rss_mb,
    log,
    peak_rss_mb,
    reset_peak_rss,
    synchronize,
)


def matmul_gflops(
    device: torch.device,
    size: int = 2048,
    repeats: int = 5,
    min_seconds: float = 0.05,
    dtype: torch.dtype = torch.float32,
) -> dict[str, float]:
    """Best-of-`repeats` rates (GFLOP/s) of `size`x`size` matmuls in `dtype`, each repeat lasting >= `min_seconds`.

    `torch_mm` is `a @ b` (fp32: MKL on x86 CPUs, cuBLAS on GPUs; bf16 on CPUs: oneDNN). For fp32 on
    CPUs also `onednn`: the same product through oneDNN (`torch.utils.mkldnn` linear), the library
    behind the CPU RNN kernels; MKL takes its slower AVX2 path on AMD processors, where oneDNN can be
    faster (docs/speed.md).
    """
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=gen)
    b = torch.randn(size, size, generator=gen)
    a_dev, b_dev = a.to(device, dtype), b.to(device, dtype)
    rates = {"torch_mm": _best_rate(lambda: a_dev @ b_dev, size, repeats, min_seconds, device)}
    if dtype == torch.float32 and device.type == "cpu" and torch.backends.mkldnn.is_available():
        try:
            from torch.utils import mkldnn as mkldnn_utils

            linear = torch.nn.Linear(size, size, bias=False)
            linear.weight.data = b.t().contiguous()
            onednn_linear, a_onednn = mkldnn_utils.to_mkldnn(linear), a.to_mkldnn()
            with torch.no_grad():
                rates["onednn"] = _best_rate(lambda: onednn_linear(a_onednn), size, repeats, min_seconds, device)
        except (RuntimeError, AttributeError) as err:  # a build without oneDNN linear
            log(f"oneDNN matmul not measured: {err}")
    return rates


def _best_rate(fn: Callable[[], Any], size: int, repeats: int, min_seconds: float, device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    inner = max(1, math.ceil(min_seconds / max(time.perf_counter() - start, 1e-6)))
    best = math.inf
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        synchronize(device)
        best = min(best, (time.perf_counter() - start) / inner)
    return 2 * size**3 / best / 1e9


# -- throughput -----------------------------------------------------------------------------------------
def sample_batches(dataset: EncodedReviews, collator: Collator, batch_size: int, n: int, seed: int) -> list[Batch]:
    """`n` training batches as the datamodule makes them (seeded shuffle, no bucketing); cycles short data."""
    lengths = dataset.lengths().clip(max=collator.max_len)
    sampler = BucketBatchSampler(lengths, batch_size, shuffle=True, seed=seed, bucket=False)
    out: list[Batch] = []
    epoch = 0
    while len(out) < n:
        sampler.set_epoch(epoch)
        for index in sampler:
            out.append(collator([dataset[i] for i in index]))
            if len(out) == n:
                break
        epoch += 1
    return out


def gate_flops(cell: str, batch: int, steps: int, embed_dim: int, hidden_size: int) -> int:
    """Forward FLOPs of the gate matmuls of one layer over a (batch, steps) input (see FLOPS_COUNTING)."""
    gates = GATES[cell] * hidden_size
    return 2 * batch * steps * embed_dim * gates + 2 * batch * steps * hidden_size * gates


def to_device(batch: Batch, device: torch.device) -> Batch:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def plain_optimizer(model: SequenceClassifier) -> torch.optim.Optimizer:
    """The optimizer `model.configure_optimizers()` makes, without its scheduler, if any."""
    optimizer = model.configure_optimizers()
    return optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer


def train_step(
    model: SequenceClassifier, device: torch.device, precision: str = "32"
) -> Callable[[Batch], torch.Tensor]:
    """One training step as SequenceClassifier takes it (forward, BCE-with-logits, backward, its
    optimizer), on `model` moved to `device` in train mode; returns the detached loss."""
    model.to(device).train()
    optimizer = plain_optimizer(model)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "16")

    def step(batch: Batch) -> torch.Tensor:
        with autocast(device, precision):
            logits = model(batch["tokens"], batch["lengths"])
            loss = model.loss_fn(logits.float(), batch["labels"])
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        return loss.detach()

    return step


def time_steps(
    step: Callable[[Batch], torch.Tensor], batches: list[Batch], device: torch.device
) -> tuple[float, float]:
    """(wall, CPU) seconds of `step` over `batches`, the device synchronized at both ends; a
    non-finite loss raises `FloatingPointError`."""
    synchronize(device)
    start, cpu_start = time.perf_counter(), time.process_time()
    losses = [step(batch) for batch in batches]
    synchronize(device)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    if not all(bool(torch.isfinite(loss)) for loss in losses):
        raise FloatingPointError("non-finite loss while benchmarking")
    return wall, cpu


def train_gate_flops(model: SequenceClassifier, batches: list[Batch]) -> int:
    """Gate-matmul FLOPs of training steps over `batches` (3x the forward's, see FLOPS_COUNTING)."""
    cell, hidden = model.hparams.encoder["name"], model.hparams.encoder["hidden_size"]
    return sum(3 * gate_flops(cell, *b["tokens"].shape, model.hparams.embed_dim, hidden) for b in batches)


def measure_training(
    model: SequenceClassifier, batches: list[Batch], warmup: int, device: torch.device, precision: str = "32"
) -> dict[str, float]:
    """Training steps as SequenceClassifier takes them (forward, BCE-with-logits, backward, its optimizer),
    in a plain loop; the first `warmup` batches are not timed. fp16 (`precision="16"`) scales the loss
    with a GradScaler, as Lightning's 16-mixed does."""
    batches = [to_device(b, device) for b in batches]
    step = train_step(model, device, precision)
    for batch in batches[:warmup]:
        step(batch)
    timed = batches[warmup:]
    wall, cpu = time_steps(step, timed, device)
    flops = train_gate_flops(model, timed)
    reviews = sum(len(b["labels"]) for b in timed)
    return {
        "train_batches": len(timed),
        "warmup_batches": warmup,
        "train_reviews_per_s": reviews / wall,
        "train_tokens_per_s": sum(int(b["lengths"].sum()) for b in timed) / wall,
        "train_padded_tokens_per_s": sum(b["tokens"].numel() for b in timed) / wall,
        "train_step_ms": 1000 * wall / len(timed),
        "train_cpu_seconds_per_wall_second": cpu / wall,
        "train_gate_gflops": flops / wall / 1e9,
        "mean_padded_len": float(np.mean([b["tokens"].shape[1] for b in timed])),
    }


def measure_layer(
    cell: str,
    batch: int,
    steps: int,
    sizes: dict[str, int],
    device: torch.device,
    n: int,
    warmup: int,
    seed: int = 0,
    precision: str = "32",
) -> dict[str, float]:
    """Forward and backward of the recurrent layer alone (`nn.LSTM` etc., batch-first, fp32 weights,
    under `precision`'s autocast) over a random (batch, steps, embed_dim) input: the kernel's share of
    a training step, without the embedding, head, loss and optimizer."""
    gen = torch.Generator().manual_seed(seed)
    layer = CELLS[cell](sizes["embed_dim"], sizes["hidden_size"], batch_first=True).to(device)
    x = torch.randn(batch, steps, sizes["embed_dim"], generator=gen).to(device).requires_grad_()

    def step() -> None:
        with autocast(device, precision):
            out, _ = layer(x)
        out[:, -1].float().sum().backward()

    for _ in range(warmup):
        step()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(n):
        step()
    synchronize(device)
    wall = (time.perf_counter() - start) / n
    flops = 3 * gate_flops(cell, batch, steps, sizes["embed_dim"], sizes["hidden_size"])
    return {"layer_step_ms": 1000 * wall, "layer_gate_gflops": flops / wall / 1e9}


def measure_inference(
    model: SequenceClassifier, batches: list[Batch], device: torch.device, precision: str = "32"
) -> dict[str, float]:
    """Eval-mode, no-grad forward passes (the first batch once more as warm-up)."""
    model.to(device).eval()
    batches = [to_device(b, device) for b in batches]
    with torch.inference_mode(), autocast(device, precision):
        model(batches[0]["tokens"], batches[0]["lengths"])
        synchronize(device)
        start = time.perf_counter()
        for batch in batches:
            model(batch["tokens"], batch["lengths"])
        synchronize(device)
    wall = time.perf_counter() - start
    model.train()
    return {"infer_batches": len(batches), "infer_reviews_per_s": sum(len(b["labels"]) for b in batches) / wall}


def seed_model(cell: str, sizes: dict[str, int], seed: int) -> SequenceClassifier:
    """The seed recipe's model (pooling last, Keras init, Adam 1e-3) at `sizes`, initialized from `seed`."""
    torch.manual_seed(seed)
    return SequenceClassifier(
        vocab_size=sizes["vocab_size"],
        embed_dim=sizes["embed_dim"],
        encoder={"name": cell, "hidden_size": sizes["hidden_size"], "init": "keras"},
        init="keras",
    )


def benchmark_cell(
    cell: str,
    dm: IMDBDataModule,
    batch_size: int,
    n_batches: int,
    warmup: int,
    sizes: dict[str, int],
    device: torch.device,
    precision: str = "32",
    seed: int = 0,
) -> dict[str, Any]:
    """Training and inference rates of one cell at one batch size, the seed recipe's model otherwise
    (Adam 1e-3, pooling last, Keras init); inference runs at the same batch size on test reviews."""
    train_batches = sample_batches(dm.train_set, dm.collator, batch_size, warmup + n_batches, seed)
    infer_batches = sample_batches(dm.test_set, dm.collator, batch_size, n_batches, seed + 1)
    model = seed_model(cell, sizes, seed)
    reset_peak_rss()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    entry: dict[str, Any] = {"batch_size": batch_size, "rss_start_mb": current_rss_mb()}
    entry.update(measure_training(model, train_batches, warmup, device, precision))
    entry["epoch_seconds_estimated"] = EPOCH_REVIEWS / entry["train_reviews_per_s"]
    entry["infer_batch_size"] = batch_size
    entry.update(measure_inference(model, infer_batches, device, precision))
    entry["peak_rss_mb"] = peak_rss_mb()
    if device.type == "cuda":
        entry["peak_gpu_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return entry
