"""Long-range dependency benchmark: test accuracy of rnn, lstm and gru against the cue's distance.

    nice -n 15 python scripts/long_range.py            # the default sweep into docs/long_range/
    python scripts/long_range.py --distances 10,50 --cells rnn,lstm --epochs 1 --n-train 200 --out /tmp/lr

Each run trains a `SequenceClassifier` on `LongRangeDataModule(distance=d)` (seqsent.data.long_range:
the label is carried by 3 sentiment words followed by d filler words) and tests the final model.
Every architecture gets the same budget: same data, epochs, batch size, embedding and hidden
size, learning rate, init and seeds (default 3 seeds, 4000 sequences, 8 epochs, hidden 48; run
time: docs/speed.md). Writes `results.md`, `results.csv` and `long_range.png` into
`--out`, prints one line per run, and ends with a JSON summary naming, per architecture, the first
distance where the median test accuracy over seeds falls below `--chance` (0.6).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import statistics
import sys
import time
import warnings
from pathlib import Path

import datasets
import lightning as L
import torch
from matplotlib.figure import Figure

from seqsent.allocator import keep_freed_memory
from seqsent.data.long_range import LongRangeDataModule
from seqsent.models import SequenceClassifier

CELLS = ("rnn", "lstm", "gru")
DISTANCES = (10, 25, 50, 100, 200, 400)
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "docs" / "long_range"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--distances", default=",".join(map(str, DISTANCES)), help="comma-separated distances")
    parser.add_argument("--cells", default=",".join(CELLS), help="comma-separated cells (rnn, lstm, gru, ...)")
    parser.add_argument("--n-train", type=int, default=4000, help="generated training sequences (20%% validate)")
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--embed-dim", type=int, default=32)
    parser.add_argument("--hidden-size", type=int, default=48)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--init", default="keras_per_gate", choices=("torch", "keras", "keras_per_gate"))
    parser.add_argument("--clip", type=float, default=1.0, help="gradient clipping norm (0: none)")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (model init, data, order)")
    parser.add_argument("--chance", type=float, default=0.6, help="test accuracy below this counts as chance")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="output directory (default: docs/long_range/)")
    parser.add_argument("--cache-dir", default=None, help="generated data cache (default $SEQSENT_CACHE_DIR)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (1: small RNN steps gain nothing from more, and "
        "spinning OpenMP threads on a shared CPU can make a run many times slower)",
    )
    args = parser.parse_args(argv)
    args.command = " ".join(["python scripts/long_range.py", *argv])
    try:
        args.distance_list = [int(d) for d in args.distances.split(",") if d.strip()]
        args.seed_list = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        parser.error("--distances and --seeds take whole numbers separated by commas")
    args.cell_list = [c.strip() for c in args.cells.split(",") if c.strip()]
    if not args.distance_list or not args.cell_list or not args.seed_list or min(args.distance_list) < 0:
        parser.error("give at least one distance (>= 0), one cell and one seed")
    if args.epochs < 1 or args.n_train < 10 or args.n_test < 2:
        parser.error("use --epochs >= 1, --n-train >= 10, --n-test >= 2")
    return args


def run_one(cell: str, distance: int, seed: int, args: argparse.Namespace) -> dict:
    """Train and test one (cell, distance, seed); returns its row of the CSV."""
    L.seed_everything(seed, workers=True, verbose=False)
    datamodule = LongRangeDataModule(
        distance=distance,
        n_train=args.n_train,
        n_test=args.n_test,
        data_seed=seed,
        vocab_size=1000,
        batch_size=args.batch_size,
        cache_dir=args.cache_dir,
    )
    model = SequenceClassifier(
        vocab_size=1000,
        embed_dim=args.embed_dim,
        encoder={"name": cell, "hidden_size": args.hidden_size, "init": args.init},  # unidirectional, last step
        init=args.init,
        lr=args.lr,
    )
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=args.epochs,
        gradient_clip_val=args.clip or None,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    start, cpu_start = time.perf_counter(), time.process_time()
    trainer.fit(model, datamodule=datamodule)
    val_best = float(trainer.callback_metrics["val/acc_best"])
    test = trainer.test(model, datamodule=datamodule, verbose=False)[0]
    return {
        "cell": cell,
        "distance": distance,
        "seed": seed,
        "test_acc": round(float(test["test/acc"]), 4),
        "val_acc_best": round(val_best, 4),
        "seconds": round(time.perf_counter() - start, 1),
        "cpu_seconds": round(time.process_time() - cpu_start, 1),  # wall time depends on other load
    }


def aggregate(rows: list[dict], chance: float) -> dict[tuple[str, int], dict]:
    """Per (cell, distance) over seeds: mean and median test accuracy, runs at or above `chance`."""
    runs: dict[tuple[str, int], list[float]] = {}
    for r in rows:
        runs.setdefault((r["cell"], r["distance"]), []).append(r["test_acc"])
    return {
        key: {
            "mean": round(statistics.mean(values), 4),
            "median": round(statistics.median(values), 4),
            "learned": sum(v >= chance for v in values),
            "runs": len(values),
        }
        for key, values in runs.items()
    }


def falls_to_chance(stats: dict[tuple[str, int], dict], cells: list[str], chance: float) -> dict[str, int | None]:
    """Per cell, the smallest distance whose median test accuracy over seeds is below `chance` (None: never).

    The median, because runs either learn the task or stay at chance: the mean of 0.99 and 0.5 says neither.
    """
    out: dict[str, int | None] = {}
    for cell in cells:
        below = [d for (c, d), value in stats.items() if c == cell and value["median"] < chance]
        out[cell] = min(below) if below else None
    return out


def write_outputs(
    rows: list[dict], stats: dict[tuple[str, int], dict], args: argparse.Namespace, chance_at: dict[str, int | None]
) -> Path:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "results.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    n = len(args.seed_list)
    lines = [
        "# Long-range dependency benchmark",
        "",
        f"Test accuracy (n_test={args.n_test}) of each cell when the label's cue words lie `distance` steps "
        "before the end of neutral filler (`seqsent.data.long_range`; chance is 0.5). Equal budget for every run: "
        f"{args.n_train} generated sequences (20% validation), {args.epochs} epochs, batch {args.batch_size}, "
        f"embedding {args.embed_dim}, hidden {args.hidden_size}, Adam lr {args.lr}, init {args.init}, "
        f"gradient clip {args.clip or 'none'}; the final model is tested. Each cell: mean over {n} seed(s) "
        f"({', '.join(map(str, args.seed_list))}; the seed also draws the data), and in brackets how many runs "
        f"reached test accuracy >= {args.chance}. Every run is in results.csv.",
        "",
        "| distance | " + " | ".join(args.cell_list) + " |",
        "|---:|" + "---:|" * len(args.cell_list),
    ]
    for d in args.distance_list:
        cells = [stats[(c, d)] for c in args.cell_list]
        lines.append(f"| {d} | " + " | ".join(f"{s['mean']:.3f} ({s['learned']}/{s['runs']})" for s in cells) + " |")
    lines += ["", f"Falls to chance (first distance where the median test accuracy over seeds is < {args.chance}):", ""]
    lines += [f"- {c}: {chance_at[c] if chance_at[c] is not None else 'never (within the sweep)'}" for c in chance_at]
    lines += ["", f"Reproduce (from the repository root): `nice -n 15 {args.command}`", ""]
    (out / "results.md").write_text("\n".join(lines), encoding="utf-8")
    plot(rows, stats, args).savefig(out / "long_range.png", dpi=100)
    return out


def plot(rows: list[dict], stats: dict[tuple[str, int], dict], args: argparse.Namespace) -> Figure:
    """Mean test accuracy against distance per cell (lines), every run (dots), log x."""
    fig = Figure(figsize=(6.5, 4.2), layout="constrained")
    ax = fig.subplots()
    for k, cell in enumerate(args.cell_list):
        color = f"C{k}"
        ax.plot(
            args.distance_list, [stats[(cell, d)]["mean"] for d in args.distance_list], "o-", color=color, label=cell
        )
        runs = [r for r in rows if r["cell"] == cell]
        jitter = 1 + 0.04 * (k - (len(args.cell_list) - 1) / 2)
        ax.scatter([r["distance"] * jitter for r in runs], [r["test_acc"] for r in runs], s=12, color=color, alpha=0.4)
    ax.axhline(0.5, color="gray", linestyle=":", label="chance")
    ax.set_xscale("log")
    ax.set_xticks(args.distance_list, [str(d) for d in args.distance_list])
    ax.set_xlabel("steps between the cue words and the end of the sequence")
    ax.set_ylabel(f"test accuracy (mean of {len(args.seed_list)} seeds; dots: runs)")
    ax.set_ylim(0.4, 1.03)
    ax.set_title(f"long-range benchmark: hidden {args.hidden_size}, {args.epochs} epochs, {args.n_train} sequences")
    ax.grid(True, alpha=0.3)
    ax.legend()
    return fig


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    torch.set_num_threads(args.threads)
    keep_freed_memory()
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    datasets.disable_progress_bars()
    rows = []
    total = len(args.cell_list) * len(args.distance_list) * len(args.seed_list)
    start = time.perf_counter()
    for d in args.distance_list:
        for seed in args.seed_list:
            for cell in args.cell_list:
                row = run_one(cell, d, seed, args)
                rows.append(row)
                elapsed = time.perf_counter() - start
                print(
                    f"[{len(rows)}/{total}] {cell:>4} distance {d:>4} seed {seed}: test acc {row['test_acc']:.3f} "
                    f"(val best {row['val_acc_best']:.3f}) in {row['seconds']:.0f}s (cpu {row['cpu_seconds']:.0f}s), "
                    f"{elapsed:.0f}s total",
                    flush=True,
                )
    stats = aggregate(rows, args.chance)
    chance_at = falls_to_chance(stats, args.cell_list, args.chance)
    out = write_outputs(rows, stats, args, chance_at)
    summary = {
        "test_acc": {c: {d: stats[(c, d)]["mean"] for d in args.distance_list} for c in args.cell_list},
        "runs_above_chance": {c: {d: stats[(c, d)]["learned"] for d in args.distance_list} for c in args.cell_list},
        "falls_to_chance_at": chance_at,
        "chance_threshold": args.chance,
        "seconds": round(time.perf_counter() - start, 1),
        "outputs": [str(out / name) for name in ("results.md", "results.csv", "long_range.png")],
    }
    print(json.dumps(summary, indent=2), flush=True)
    return summary


if __name__ == "__main__":
    main()
