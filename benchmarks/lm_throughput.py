"""Language model training throughput under a Lightning Trainer against a plain PyTorch loop: the same
`LanguageModel`, the same batches, the same optimizer and gradient clipping, in tokens per second. Prints
JSON on stdout and progress on stderr. Not part of the installed package; results and their reading:
docs/speed.md.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/lm_throughput.py --threads 1     # conf/lm/small.yaml's sizes
    .venv/bin/python benchmarks/lm_throughput.py --embed-dim 400 --hidden-size 1150 --cutoffs --device cuda  # awd_lstm

The defaults are the CPU recipe's model (conf/lm/small.yaml) and batches (conf/pretrain.yaml's lm_data).

The batches are consecutive windows (`--batch-size` streams x `--bptt` tokens) of a random token stream
whose ids follow a Zipf law over `--vocab-size` (a frequency-ranked vocabulary, as the adaptive softmax
expects), so the carried state and the softmax's clusters work as on text. Both loops call the module's
`training_loss` and carry the state; Lightning's adds its own machinery (logging, metrics, hooks, the
module's non-finite guard). Each rate counts the `--steps` steps after `--warmup` steps; the best of
`--repeats` alternating runs of each is reported, and `lightning_overhead` is 1 - lightning / plain.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

import lightning as L
import numpy as np
import torch
from bench import describe_device, log, resolve_device, synchronize
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader

from seqsent.models.language_model import LanguageModel


def zipf_batches(vocab_size: int, rows: int, bptt: int, count: int, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """`count` consecutive windows of `rows` streams of Zipf-distributed ids (3 .. vocab_size - 1)."""
    rng = np.random.default_rng(seed)
    ranks = np.arange(1, vocab_size - 2)
    probs = 1.0 / ranks
    stream = torch.from_numpy(rng.choice(ranks, size=rows * (count * bptt + 1), p=probs / probs.sum()) + 2)
    per_row = count * bptt + 1
    grid = stream.view(rows, per_row)
    return [
        {"inputs": grid[:, i * bptt : (i + 1) * bptt], "targets": grid[:, i * bptt + 1 : (i + 1) * bptt + 1]}
        for i in range(count)
    ]


def plain_rate(model: LanguageModel, batches: list[dict], warmup: int, device: torch.device, clip: float) -> float:
    """Tokens per second of a plain loop: forward, backward, clipping, optimizer step, the state carried."""
    optimizer = model.configure_optimizers()
    model.train()
    state, start, tokens = None, 0.0, 0
    for step, batch in enumerate(batches):
        if step == warmup:
            synchronize(device)
            start = time.perf_counter()
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        loss, _, state = model.training_loss(batch, state)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        tokens += batch["targets"].numel() if step >= warmup else 0
    synchronize(device)
    return tokens / (time.perf_counter() - start)


class Clock(Callback):
    """Seconds and tokens from the start of training batch `warmup` to the end of training."""

    def __init__(self, warmup: int, device: torch.device) -> None:
        self.warmup, self.device, self.start, self.end, self.tokens = warmup, device, 0.0, 0.0, 0

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: Any, batch: dict, batch_idx: int) -> None:
        if batch_idx == self.warmup:
            synchronize(self.device)
            self.start = time.perf_counter()
        if batch_idx >= self.warmup:
            self.tokens += batch["targets"].numel()

    def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        synchronize(self.device)
        self.end = time.perf_counter()

    def rate(self) -> float:
        return self.tokens / (self.end - self.start)


def lightning_rate(model: LanguageModel, batches: list[dict], warmup: int, device: torch.device, clip: float) -> float:
    """Tokens per second of `Trainer.fit` over the same batches (no validation, checkpoints or loggers)."""
    clock = Clock(warmup, device)
    trainer = L.Trainer(
        accelerator=device.type, devices=1, max_epochs=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, gradient_clip_val=clip, limit_val_batches=0,
        num_sanity_val_steps=0, callbacks=[clock],
    )  # fmt: skip
    trainer.fit(model, train_dataloaders=DataLoader(batches, batch_size=None, pin_memory=device.type == "cuda"))
    return clock.rate()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vocab-size", type=int, default=30_000)
    parser.add_argument("--cutoffs", type=int, nargs="*", default=[2000, 10000], help="adaptive softmax ([]: full)")
    parser.add_argument("--embed-dim", type=int, default=256)
    parser.add_argument("--hidden-size", type=int, default=512)
    parser.add_argument("--num-layers", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--bptt", type=int, default=70)
    parser.add_argument("--steps", type=int, default=30, help="timed steps per run")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs of each loop (the best counts)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    sizes = {
        "vocab_size": args.vocab_size, "embed_dim": args.embed_dim, "hidden_size": args.hidden_size,
        "num_layers": args.num_layers, "adaptive_cutoffs": args.cutoffs,
    }  # fmt: skip
    batches = zipf_batches(args.vocab_size, args.batch_size, args.bptt, args.warmup + args.steps)
    torch.manual_seed(0)
    initial = LanguageModel(**sizes, scheduler="none").state_dict()
    rates: dict[str, list[float]] = {"plain": [], "lightning": []}
    for repeat in range(args.repeats):
        for name, measure in (("plain", plain_rate), ("lightning", lightning_rate)):
            model = LanguageModel(**sizes, scheduler="none")
            model.load_state_dict(initial)  # every run starts from the same weights
            log(f"{name} loop, run {repeat + 1}/{args.repeats}")
            rates[name].append(round(measure(model.to(device), batches, args.warmup, device, 1.0), 1))
    plain, lightning = max(rates["plain"]), max(rates["lightning"])
    result = {
        "tokens_per_second": {"plain": plain, "lightning": lightning},
        "lightning_overhead": round(1 - lightning / plain, 4),
        "runs": rates,
        "model": {**sizes, "num_parameters": sum(p.numel() for p in LanguageModel(**sizes).parameters())},
        "batch": {"batch_size": args.batch_size, "bptt": args.bptt, "steps": args.steps, "warmup": args.warmup},
        "threads": args.threads,
        "device": describe_device(device),
        "versions": {"torch": torch.__version__, "lightning": L.__version__},
        "load_average": os.getloadavg(),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
