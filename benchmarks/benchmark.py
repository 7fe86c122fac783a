"""Speed benchmark of seqsent: data preparation, rnn/lstm/gru training and inference throughput at the
seed sizes, the machine's fp32 matmul rate, and the wall time until an LSTM reaches 86.2% IMDB test
accuracy. Prints JSON on stdout and progress on stderr. Not part of the installed package; results
and their reading: docs/speed.md.

The measurement (real IMDB, a quiet machine; from the repository root):

    .venv/bin/python benchmarks/benchmark.py --data ../shared/data/imdb --out docs/benchmarks/cpu.json

Other uses:

    python benchmarks/benchmark.py --quick --skip-accuracy         # synthetic data, fewer batches
    python benchmarks/benchmark.py --data DIR --device cuda --precision 16 --out docs/benchmarks/gpu.json
    python benchmarks/benchmark.py --data DIR --device cuda --epoch    # + a real epoch, eager and CUDA-graphed
    python benchmarks/benchmark.py --data DIR --bf16 --out docs/benchmarks/cpu_bf16.json  # CPU with AVX512-BF16
    python benchmarks/benchmark.py --data DIR --recipe batch_size=128 lr=3e-3 --max-epochs 6

Data: `--data DIR` or `$SEQSENT_IMDB_DIR` (train-*.parquet and test-*.parquet), else generated reviews
of IMDB's shape (`bench.imdb_like_reviews`, made once into $SEQSENT_CACHE_DIR), and the JSON's `data`
says which. Throughput: the seed sizes (vocab 10000, max_len 200 pre/pre, embedding 128, hidden 128,
Adam 1e-3) at batch 32 and 256; a plain loop of SequenceClassifier training steps (forward,
BCE-with-logits, backward, optimizer step) over prefetched batches after a warm-up;
`epoch_seconds_estimated` = 20000 reviews / the measured rate. `time_to_86_2` runs only on real
data: seqsent's Lightning training of the recipe (`--recipe key=value`, see `bench.DEFAULT_RECIPE`)
from a cold cache, testing after every half epoch; null with a reason in `time_to_86_2_detail` when
skipped or not reached within `--max-epochs`. Under `--precision bf16|16` the `*_autocast` keys
divide the LSTM's gate-matmul rate by a matmul in that dtype; `lstm_train_flops_fraction` always
divides by the fp32 rate.

Threads: torch's default unless `--threads N`. On a machine busy with other work, use `--threads 1`
(or OMP_WAIT_POLICY=PASSIVE): spinning OpenMP threads that lose their core make training steps many
times slower (docs/speed.md). The JSON records the load average.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

import bench
import torch

from seqsent.allocator import keep_freed_memory
from seqsent.data.sources import ENV_DIR
from seqsent.errors import SeqsentError, report_errors
from seqsent.models.encoders import cpu_lstm_autocast_works

BATCH_SIZES = (32, 256)


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Command-line options; `--quick` lowers the batch counts and the matmul size."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default=None, help=f"IMDB parquet directory (default ${ENV_DIR}, else synthetic)")
    parser.add_argument("--out", default=None, help="also write the JSON here, e.g. docs/benchmarks/cpu.json")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument(
        "--precision", choices=sorted(bench.PRECISIONS), default="32", help="32, bf16 or 16 (fp16) autocast"
    )
    parser.add_argument("--bf16", action="store_true", help="the same as --precision bf16")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--quick", action="store_true", help="few batches, small matmul (a smoke run)")
    parser.add_argument(
        "--epoch",
        action="store_true",
        help="also time one real LSTM epoch at batch 32 and 256 (on CUDA: eager and graphed)",
    )
    parser.add_argument("--skip-accuracy", action="store_true", help="leave out the time-to-86.2%% run")
    parser.add_argument("--recipe", nargs="*", default=[], metavar="KEY=VALUE", help="time-to-accuracy settings")
    parser.add_argument("--max-epochs", type=int, default=5, help="time-to-accuracy epoch cap")
    parser.add_argument("--batches", default=None, help="timed batches at batch 32,256 (default 60,15; quick 8,2)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed batches first (default 3; quick 1)")
    parser.add_argument("--n-reviews", type=int, default=25_000, help="synthetic reviews per split")
    parser.add_argument("--vocab-size", type=int, default=bench.SEED_SIZES["vocab_size"])
    parser.add_argument("--max-len", type=int, default=bench.SEED_SIZES["max_len"])
    parser.add_argument("--embed-dim", type=int, default=bench.SEED_SIZES["embed_dim"])
    parser.add_argument("--hidden-size", type=int, default=bench.SEED_SIZES["hidden_size"])
    parser.add_argument("--seed", type=int, default=0, help="batch order, model init and synthetic data")
    parser.add_argument("--work-dir", default=None, help="where the temporary caches go (default: system temp)")
    args = parser.parse_args(argv)
    batches = args.batches or ("8,2" if args.quick else "60,15")
    try:
        counts = [int(x) for x in batches.split(",")]
    except ValueError:
        parser.error("--batches takes two whole numbers, e.g. 60,15")
    if len(counts) != 2 or min(counts) < 1:
        parser.error("--batches takes two positive numbers, e.g. 60,15")
    args.batch_counts = dict(zip(BATCH_SIZES, counts))
    if args.bf16:
        args.precision = "bf16"
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 3)
    if args.warmup < 0 or args.max_epochs < 1 or args.n_reviews < 20 or (args.threads is not None and args.threads < 1):
        parser.error("use --warmup >= 0, --max-epochs >= 1, --n-reviews >= 20, --threads >= 1")
    if args.out and Path(args.out).is_dir():  # checked now, not after the whole benchmark ran
        parser.error(f"--out {args.out} is a directory: give a file path, e.g. docs/benchmarks/cpu.json")
    if args.work_dir and not Path(args.work_dir).is_dir():
        parser.error(f"--work-dir {args.work_dir} is not a directory: create it or leave --work-dir out")
    args.command = shlex.join(["python", "benchmarks/benchmark.py", *argv])
    return args


def data_source(args: argparse.Namespace) -> tuple[Path, str]:
    """(directory to read, the JSON's `data` value): the given or $SEQSENT_IMDB_DIR directory, else synthetic."""
    given = args.data or os.environ.get(ENV_DIR)
    if given:
        path = Path(given).expanduser()
        if not path.is_dir():
            raise SeqsentError(f"--data {given}: not a directory: give the IMDB parquet directory or leave it out")
        return path.resolve(), str(path.resolve())
    return bench.synthetic_imdb_dir(args.n_reviews, args.seed), "synthetic"


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every measurement, as the JSON's dict."""
    device = bench.resolve_device(args.device)
    low = bench.AUTOCAST_DTYPES.get(args.precision)
    if device.type == "cpu" and low is not None and not cpu_lstm_autocast_works(low):
        raise SeqsentError(
            f"--precision {args.precision}: this CPU's oneDNN has no {args.precision} LSTM kernel (bf16 needs "
            "AVX-512), so the LSTM would run in fp32: leave --precision/--bf16 out here"
        )
    if args.threads:
        torch.set_num_threads(args.threads)
    malloc_pad_mb = keep_freed_memory()
    recipe = bench.parse_recipe(args.recipe)
    bench.check_recipe(recipe)
    path, data_label = data_source(args)
    sizes = {"vocab_size": args.vocab_size, "max_len": args.max_len, "embed_dim": args.embed_dim}
    sizes["hidden_size"] = args.hidden_size
    data_kwargs = {"vocab_size": args.vocab_size, "max_len": args.max_len, "padding": "pre", "truncation": "pre"}
    bench.log(f"device {bench.describe_device(device)}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    reset_ok = bench.reset_peak_rss()  # per-entry peaks need a resettable peak RSS (Linux)
    load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    if load_start is not None and load_start >= 1.0:
        bench.log(
            f"warning: the machine is busy (load average {load_start:.1f}): timings will be noisy, and with "
            "several threads spinning OpenMP threads can make steps many times slower (see --threads)"
        )

    with tempfile.TemporaryDirectory(prefix="seqsent-bench-", dir=args.work_dir) as tmp:
        work = Path(tmp)
        with bench.datasets_cache(work / "hf"):
            cold, dm = bench.time_prep(path, work / "prep-cache", **data_kwargs)
        bench.log(f"prep cold {cold:.2f}s ({len(dm.train_set)} train, {len(dm.test_set)} test reviews)")
        del dm
        cached, dm = bench.time_prep(path, work / "prep-cache", **data_kwargs)
        bench.log(f"prep cached {cached:.2f}s")
        mean_words = float(dm.data.splits["train"].lengths.mean())

        size, repeats = (1024, 3) if args.quick else (2048, 5)
        if device.type == "cuda":
            size *= 4
        matmul = bench.matmul_gflops(device, size, repeats)
        gflops = max(matmul.values())
        bench.log(f"matmul {size}x{size} fp32 GFLOP/s: " + ", ".join(f"{k} {v:.1f}" for k, v in matmul.items()))
        low_dtype = bench.AUTOCAST_DTYPES.get(args.precision)
        low_gflops = None  # under autocast: the matmul rate in the autocast dtype, for like-for-like fractions
        if low_dtype is not None:
            low_gflops = bench.matmul_gflops(device, size, repeats, dtype=low_dtype)["torch_mm"]
            bench.log(f"matmul {size}x{size} {low_dtype} GFLOP/s: {low_gflops:.1f}")

        models: dict[str, dict[str, Any]] = {}
        for cell in bench.CELLS:
            models[cell] = {}
            for batch_size in BATCH_SIZES:
                n = args.batch_counts[batch_size]
                entry = bench.benchmark_cell(
                    cell, dm, batch_size, n, args.warmup, sizes, device, args.precision, args.seed
                )
                models[cell][f"batch_{batch_size}"] = entry
                bench.log(
                    f"{cell} batch {batch_size}: train {entry['train_reviews_per_s']:.0f} reviews/s "
                    f"({entry['train_step_ms']:.0f} ms/step), infer {entry['infer_reviews_per_s']:.0f} reviews/s, "
                    f"peak RSS {entry['peak_rss_mb']:.0f} MB"
                )
        train_rate = models["lstm"]["batch_32"]["train_gate_gflops"]
        layer = bench.measure_layer(
            "lstm", 32, args.max_len, sizes, device, args.batch_counts[32], args.warmup, precision=args.precision
        )
        bench.log(f"nn.LSTM layer alone, batch 32: {layer['layer_step_ms']:.1f} ms forward+backward")
        paired = None
        if args.precision == "32":
            rounds, steps = (2, 2) if args.quick else (7, 10)
            paired = bench.paired_lstm_fraction(
                dm, sizes, device, rounds, steps, matmul_size=size, warmup=args.warmup, seed=args.seed
            )
            bench.log(
                f"LSTM step / matmul rate in {rounds} paired rounds: median {paired['fraction_median']:.3f} "
                f"({min(paired['fractions']):.3f}-{max(paired['fractions']):.3f})"
            )

        detail: dict[str, Any]
        if args.skip_accuracy:
            detail = {"seconds": None, "reason": "skipped (--skip-accuracy)"}
        elif data_label == "synthetic":
            detail = {"seconds": None, "reason": "synthetic data: the 86.2% target is about real IMDB (give --data)"}
        else:
            bench.log(f"time to {bench.TARGET_ACC:.1%} test accuracy, recipe {recipe}")
            target = bench.TARGET_ACC
            detail = bench.time_to_accuracy(path, recipe, args.max_epochs, target, device, work, args.precision)
        # last: a CUDA graph capture that fails can leave the device unusable for what follows
        epochs: dict[str, Any] | None = None
        if args.epoch:
            epochs = {}
            for batch_size in BATCH_SIZES:
                entry = bench.benchmark_epoch("lstm", dm, batch_size, sizes, device, args.seed, args.warmup)
                epochs[f"batch_{batch_size}"] = entry
                bench.log(
                    f"lstm epoch, batch {batch_size}: "
                    + ", ".join(
                        f"{k} {v['epoch_seconds']:.2f}s" if "epoch_seconds" in v else f"{k} {v['error']}"
                        for k, v in entry.items()
                        if isinstance(v, dict)
                    )
                )
        del dm

    return {
        "device": bench.describe_device(device),
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "malloc_pad_mb": malloc_pad_mb,
        "data": data_label,
        "prep_seconds_cold": cold,
        "prep_seconds_cached": cached,
        "matmul_gflops": gflops,
        "lstm_train_flops_fraction": train_rate / gflops,
        "lstm_layer_flops_fraction": layer["layer_gate_gflops"] / gflops,
        "lstm_train_flops_fraction_paired": paired["fraction_median"] if paired else None,
        "lstm_paired_detail": paired,
        "autocast_dtype": None if low_dtype is None else str(low_dtype).removeprefix("torch."),
        "matmul_gflops_autocast": low_gflops,
        "lstm_train_flops_fraction_autocast": None if low_gflops is None else train_rate / low_gflops,
        "lstm_layer_flops_fraction_autocast": None if low_gflops is None else layer["layer_gate_gflops"] / low_gflops,
        "lstm_layer_detail": layer,
        "flops_counting": bench.FLOPS_COUNTING,
        "lstm_epoch": epochs,
        "time_to_86_2": detail["seconds"],
        "time_to_86_2_recipe": recipe,
        "time_to_86_2_detail": detail,
        "models": models,
        "notes": {
            "command": args.command,
            "lstm_layer_flops_fraction": "the nn.LSTM layer alone (forward and backward over a random batch-32 input "
            "of max_len steps, no embedding, head, loss or optimizer) as a fraction of matmul_gflops: the kernel's "
            "own efficiency; lstm_train_flops_fraction is the whole training step's",
            "lstm_train_flops_fraction_paired": "the same whole-step fraction with the matmul rate measured right "
            "before each round of seed LSTM steps (batch 32, fp32 only), the median over the rounds "
            "(benchmarks/bench/paired.py): the machine's drift between the two measurements cancels; "
            "lstm_paired_detail lists every round",
            "autocast": "with --precision bf16 or 16 the kernels run in that dtype: lstm_*_flops_fraction still "
            "divide by the fp32 matmul rate (matmul_gflops), the *_autocast keys by the same-size matmul in the "
            "autocast dtype (matmul_gflops_autocast, torch_mm)",
            "malloc_pad_mb": "glibc malloc keeps up to this many MiB of freed memory for reuse, as the entry points "
            "set it (seqsent.allocator); 0: a glibc.malloc tunable in GLIBC_TUNABLES decided instead",
            "sizes": sizes,
            "data_detail": f"{data_label}: mean {mean_words:.0f} tokens per training review (untruncated)",
            "prep": "IMDBDataModule.setup() on a new datamodule; cold: empty seqsent cache dir and empty "
            "datasets Arrow cache (load, vocabulary, encoding of train+test); cached: a second new datamodule "
            "on the filled cache",
            "train": "SequenceClassifier (seed recipe: pooling last, Keras init, Adam 1e-3) in a plain loop of "
            "forward, BCE-with-logits, backward, optimizer step over prefetched unbucketed batches (DataLoader "
            "time excluded), timed after the warm-up batches; train_tokens_per_s counts true tokens, "
            "train_padded_tokens_per_s batch x padded length",
            "epoch_seconds_estimated": f"{bench.EPOCH_REVIEWS} reviews / train_reviews_per_s (extrapolated, "
            "not a measured epoch)",
            "lstm_epoch": "--epoch: one measured pass over the 20,000 training reviews (shuffled, unbucketed, "
            "moved to the device first) after the warm-up batches; cuda_graph: the step captured once as a CUDA "
            "graph and replayed (benchmarks/bench/graphed.py), batches of another shape run eagerly (eager_steps)",
            "inference": "eval mode, torch.inference_mode, at the entry's batch size, on test reviews",
            "peak_rss_mb": "getrusage ru_maxrss during the entry (peak reset before it via /proc/self/clear_refs), "
            "of the whole process: libraries and data already resident included, and memory that earlier "
            "entries freed but the allocator kept (up to malloc_pad_mb), so entries that run later read higher; "
            "rss_start_mb: the resident size when the entry began, peak_rss_mb - rss_start_mb its own growth"
            if reset_ok
            else "getrusage ru_maxrss since the process started (could not reset the peak)",
            "matmul": {
                "what": f"{size}x{size} float32 matmul on {device.type}, best of {repeats}; matmul_gflops is "
                "the faster of torch_mm (MKL/cuBLAS) and onednn (oneDNN, CPU only: what the RNN kernels use)",
                **{f"{k}_gflops": v for k, v in matmul.items()},
            },
            "precision": bench.PRECISIONS[args.precision],
            "load_average_1min": {"start": load_start, "end": os.getloadavg()[0] if load_start is not None else None},
        },
    }


def rounded(value: Any, digits: int = 4) -> Any:
    """Floats rounded to `digits` significant digits, recursively."""
    if isinstance(value, float) and math.isfinite(value) and value != 0:
        return round(value, max(0, digits - 1 - math.floor(math.log10(abs(value)))))
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v, digits) for v in value]
    return value


@report_errors
def main(argv: list[str] | None = None) -> int:
    """Run, print the JSON on stdout (anything else printed meanwhile goes to stderr), write `--out`."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    with contextlib.redirect_stdout(sys.stderr):
        result = rounded(run(args))
    text = json.dumps(result, indent=2)
    print(text, flush=True)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n", encoding="utf-8")
        bench.log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
