"""A training step captured once as a CUDA graph and replayed, and a measured GPU epoch.

At the seed sizes (batch 32, 200 steps, 128 units) a GPU training step is launch-bound: it issues
many small kernels (embedding, recurrence, pooling, loss, their backward, Adam), and the host spends
longer issuing them than the GPU spends running them (figures: docs/speed.md). Capturing forward,
loss, backward and the optimizer step as one CUDA graph replaces those launches with one replay per
batch. The arithmetic is the eager step's: the same kernels on the same buffers, so a graphed run
follows the eager run's losses (a GPU test checks it). Batches of another shape (e.g. an epoch's
shorter last batch) take the eager path.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from seqsent.data import IMDBDataModule
from seqsent.data.batching import Batch
from seqsent.errors import SeqsentError
from seqsent.models import SequenceClassifier

from .common import EPOCH_REVIEWS, synchronize
from .throughput import plain_optimizer, sample_batches, seed_model, to_device


class GraphedTrainStep:
    """`step(batch) -> loss` for `model` and `optimizer`, replaying a CUDA graph captured after
    training on the `warmup` batches (real steps, taken on a side stream as CUDA requires).

    The optimizer is switched to `capturable=True` (Adam/AdamW keep their step counts on the GPU).
    Works in fp32; autocast and loss scaling are not captured.
    """

    def __init__(self, model: SequenceClassifier, optimizer: torch.optim.Optimizer, warmup: Sequence[Batch]):
        if not warmup:
            raise ValueError("GraphedTrainStep needs at least one warm-up batch")
        device = warmup[0]["tokens"].device
        if device.type != "cuda":
            raise SeqsentError(f"CUDA graphs need the model and batches on a CUDA device, not {device}")
        for group in optimizer.param_groups:
            if "capturable" not in group:
                raise SeqsentError(f"{type(optimizer).__name__} cannot be captured: use Adam or AdamW")
            group["capturable"] = True
        self.model, self.optimizer = model, optimizer
        self.static = {k: v.clone() for k, v in warmup[0].items()}
        self.eager_steps = 0
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for batch in warmup:
                self.optimizer.zero_grad(set_to_none=True)
                train_step(model, optimizer, batch)
        torch.cuda.current_stream(device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        self.optimizer.zero_grad(set_to_none=True)  # the graph's backward makes the gradients in its pool
        with torch.cuda.graph(self.graph):
            self.static_loss = train_step(model, optimizer, self.static)

    def fits(self, batch: Batch) -> bool:
        """Whether `batch` has the captured shapes and dtypes."""
        return all(batch[k].shape == v.shape and batch[k].dtype == v.dtype for k, v in self.static.items())

    def __call__(self, batch: Batch) -> Tensor:
        if not self.fits(batch):
            self.eager_steps += 1
            self.optimizer.zero_grad(set_to_none=False)  # in place: the graph keeps using these buffers
            return train_step(self.model, self.optimizer, batch)
        for key, value in batch.items():
            self.static[key].copy_(value, non_blocking=True)
        self.graph.replay()
        return self.static_loss.clone()


def train_step(model: SequenceClassifier, optimizer: torch.optim.Optimizer, batch: Batch) -> Tensor:
    """Forward, BCE-with-logits, backward (into the gradients as they are), optimizer step; the loss."""
    logits = model(batch["tokens"], batch["lengths"])
    loss = model.loss_fn(logits.float(), batch["labels"])
    loss.backward()
    optimizer.step()
    return loss.detach()


def eager_train_step(model: SequenceClassifier, optimizer: torch.optim.Optimizer) -> Any:
    """The plain step: `train_step` on fresh gradients; returns the loss."""

    def step(batch: Batch) -> Tensor:
        optimizer.zero_grad(set_to_none=True)
        return train_step(model, optimizer, batch)

    return step


def measure_epoch(
    model: SequenceClassifier,
    epoch: Sequence[Batch],
    warmup: Sequence[Batch],
    device: torch.device,
    graphed: bool,
) -> dict[str, Any]:
    """Wall time of one pass over `epoch` (batches already on `device`), after `warmup` steps (and,
    when `graphed`, the capture); the clock starts and stops with the device synchronized."""
    model.to(device).train()
    optimizer = plain_optimizer(model)
    if graphed:
        start = time.perf_counter()
        step: Any = GraphedTrainStep(model, optimizer, warmup)
        synchronize(device)
        capture = time.perf_counter() - start
    else:
        step, capture = eager_train_step(model, optimizer), None
        for batch in warmup:
            step(batch)
    synchronize(device)
    start = time.perf_counter()
    losses = torch.stack([step(batch) for batch in epoch])
    synchronize(device)
    wall = time.perf_counter() - start
    if not bool(torch.isfinite(losses).all()):
        raise FloatingPointError("non-finite loss in the measured epoch")
    reviews = sum(len(b["labels"]) for b in epoch)
    return {
        "epoch_seconds": wall,
        "reviews": reviews,
        "batches": len(epoch),
        "step_ms": 1000 * wall / len(epoch),
        "reviews_per_s": reviews / wall,
        "mean_loss": float(losses.mean()),
        "warmup_and_capture_seconds": capture,
        "eager_steps": getattr(step, "eager_steps", len(epoch)),
    }


def epoch_batches(n_reviews: int, batch_size: int) -> int:
    """Batches in one epoch of `min(n_reviews, EPOCH_REVIEWS)` reviews."""
    return math.ceil(min(n_reviews, EPOCH_REVIEWS) / batch_size)


def benchmark_epoch(
    cell: str,
    dm: IMDBDataModule,
    batch_size: int,
    sizes: dict[str, int],
    device: torch.device,
    seed: int = 0,
    warmup: int = 3,
) -> dict[str, Any]:
    """One measured epoch over the first `EPOCH_REVIEWS` training reviews (shuffled, unbucketed, on the
    device beforehand) of the seed model, eager and, on CUDA, as a replayed CUDA graph; both start
    from the same weights and see the same batches."""
    n = epoch_batches(len(dm.train_set), batch_size)
    batches = sample_batches(dm.train_set, dm.collator, batch_size, n + 8 * max(warmup, 1), seed)
    epoch = [to_device(b, device) for b in batches[:n]]
    # warm-up (and capture) batches from the next epoch's first few, of the shape most of this epoch's have
    common = Counter(tuple(b["tokens"].shape) for b in epoch).most_common(1)[0][0]
    warm = [to_device(b, device) for b in batches[n:] if tuple(b["tokens"].shape) == common][:warmup]
    warm = warm or epoch[:warmup]
    out: dict[str, Any] = {
        "batch_size": batch_size,
        "eager": measure_epoch(seed_model(cell, sizes, seed), epoch, warm, device, False),
    }
    if device.type == "cuda":
        try:
            out["cuda_graph"] = measure_epoch(seed_model(cell, sizes, seed), epoch, warm, device, True)
        except RuntimeError as err:  # a kernel that cannot be captured: say which, keep the eager figures
            out["cuda_graph"] = {"error": f"{type(err).__name__}: {str(err).strip().splitlines()[0]}"}
    return out
