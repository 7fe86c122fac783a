"""Shared pieces of the benchmark: constants, logging, devices, peak memory."""

from __future__ import annotations

import contextlib
import os
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Any

import torch

from seqsent.errors import SeqsentError

TARGET_ACC = 0.862
EPOCH_REVIEWS = 20_000  # the training part of IMDB's 25k train reviews after the 20% validation split
CELLS = ("rnn", "lstm", "gru")
GATES = {"rnn": 1, "lstm": 4, "gru": 3, "lstm_scratch": 4}
SEED_SIZES: dict[str, int] = {"vocab_size": 10_000, "max_len": 200, "embed_dim": 128, "hidden_size": 128}
FLOPS_COUNTING = (
    "gate matmuls only, per batch of B reviews padded to T steps (the kernels run every padded step): "
    "forward = 2*B*T*E*G*H (input projection) + 2*B*T*H*G*H (recurrent), G gates (rnn 1, lstm 4, gru 3); "
    "training step = 3x forward (backward ~2x forward: gradients of the inputs and of the weights); "
    "embedding, elementwise gate math, pooling, head, loss and optimizer are not counted"
)

# The time-to-accuracy recipe: data.* / model.* settings of seqsent plus the loop's own keys.
DEFAULT_RECIPE: dict[str, Any] = {
    "cell": "lstm",
    "vocab_size": 20_000,
    "min_frequency": 1,
    "max_len": 256,
    "padding": "pre",
    "truncation": "pre",
    "val_fraction": 0.2,
    "bucket": True,
    "batch_size": 64,
    "eval_batch_size": 256,
    "embed_dim": 128,
    "hidden_size": 128,
    "num_layers": 1,
    "bidirectional": False,
    "pooling": "max",
    "init": "torch",
    "dropout": 0.0,
    "embed_dropout": 0.0,
    "optimizer": "adamw",
    "lr": 2e-3,
    "weight_decay": 0.01,
    "scheduler": "none",
    "warmup_fraction": 0.0,
    "gradient_clip": None,
    "evals_per_epoch": 2,
    "seed": 42,
}
NULLABLE = {"gradient_clip"}
DATA_KEYS = (
    "vocab_size",
    "min_frequency",
    "max_len",
    "padding",
    "truncation",
    "val_fraction",
    "bucket",
    "batch_size",
    "eval_batch_size",
)
ENCODER_KEYS = ("hidden_size", "num_layers", "bidirectional", "pooling")  # the encoder's, and init and dropout
MODEL_KEYS = (
    "embed_dim",
    "init",
    "dropout",
    "embed_dropout",
    "optimizer",
    "lr",
    "weight_decay",
    "scheduler",
    "warmup_fraction",
)


def log(message: str) -> None:
    """Progress line on stderr (stdout carries only the JSON)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- device ---------------------------------------------------------------------------------------
def resolve_device(name: str) -> torch.device:
    """`cpu` or `cuda[:N]`; a `SeqsentError` (one line, exit code 2) when CUDA is missing."""
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            why = "a CPU-only build" if torch.version.cuda is None else "no GPU visible"
            raise SeqsentError(
                f"--device {name}: CUDA is not available (torch {torch.__version__}, {why}): "
                "run on a GPU machine with a CUDA build of torch, or use --device cpu"
            )
        return torch.device(name)
    raise SeqsentError(f"--device {name}: use cpu or cuda")


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def describe_device(device: torch.device) -> str:
    """E.g. `cuda: NVIDIA H100 80GB HBM3` or `cpu: AMD EPYC 7B13 (2 logical cores)`."""
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    name = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    return f"cpu: {name} ({os.cpu_count()} logical cores)"


PRECISIONS = {"32": "32-true", "bf16": "bf16-mixed", "16": "16-mixed"}  # --precision -> Lightning's name
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "16": torch.float16}  # --precision -> autocast dtype (none for 32)


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 or fp16 autocast on `device` for precision `bf16` / `16`, nothing for `32`."""
    if precision not in AUTOCAST_DTYPES:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=AUTOCAST_DTYPES[precision])


# -- memory -----------------------------------------------------------------------------------------
def reset_peak_rss() -> bool:
    """Reset this process's peak RSS (Linux `clear_refs` 5) so `peak_rss_mb` covers what follows."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def current_rss_mb() -> float | None:
    """The resident set size now, in MB (Linux `/proc/self/statm`; None elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    """`getrusage(RUSAGE_SELF).ru_maxrss` in MB (kB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024
