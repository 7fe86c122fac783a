"""Self-training in one command: teacher run(s), their soft labels for the unlabeled reviews, a student.

    python scripts/self_train.py --data ../shared/data/imdb --out runs/self_train
    python scripts/self_train.py --out runs/st3 --teacher-seeds 42 0 1     # three teachers
    python scripts/self_train.py --out runs/tiny -- data.vocab_size=2000 trainer.max_epochs=1  # overrides for every run

The stages, each a plain command you could run yourself (docs/results.md, semi-supervised):
1. `python -m seqsent.train seed=S hydra.run.dir=OUT/teacher_sS` for each teacher seed;
2. `python scripts/soft_label.py --out OUT/soft_labels.parquet <the teachers' best checkpoints>`;
3. `python -m seqsent.train experiment=student data.soft_labels=OUT/soft_labels.parquet seed=SEED
   hydra.run.dir=OUT/student`.
Hydra overrides after `--` go to every training run, except the settings the script makes per stage
(seed, run_name, experiment, data, data.path, data.soft_labels, ckpt_path, hydra.*), which are
refused there. Run times: docs/speed.md. Each stage shows its own progress; the end is a JSON
summary, also written to OUT/summary.json. OUT must be new: nothing is overwritten.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from seqsent.data.sources import default_path, load_splits
from seqsent.errors import SeqsentError, report_errors
from seqsent.utils import write_json

SOFT_LABEL = Path(__file__).resolve().parent / "soft_label.py"
KEPT = ("val/acc_best", "test/acc", "test/auroc", "train_seconds", "best_ckpt")
# set per stage by the script: an override after `--` would silently replace them (Hydra's last value wins)
OWN_KEYS = ("seed", "run_name", "experiment", "data", "data.path", "data.soft_labels", "ckpt_path")
OWN_KEYS_HINT = "use --teacher-seeds, --seed and --data"


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    overrides: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, overrides = argv[:cut], argv[cut + 1 :]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="a new directory for the runs and the labels")
    parser.add_argument("--data", default=default_path(), help="IMDB directory (default: $SEQSENT_IMDB_DIR)")
    parser.add_argument("--teacher-seeds", type=int, nargs="+", default=[42], help="one teacher per seed")
    parser.add_argument("--seed", type=int, default=42, help="the student's seed")
    args = parser.parse_args(argv)
    if len(set(args.teacher_seeds)) != len(args.teacher_seeds):
        parser.error(
            f"--teacher-seeds {' '.join(map(str, args.teacher_seeds))} repeats a seed: give each teacher its own"
        )
    for override in overrides:
        key = override.lstrip("+~").partition("=")[0]
        if key in OWN_KEYS or key.startswith("hydra."):
            parser.error(f"{override!r} after --: the script sets {key} for each stage itself ({OWN_KEYS_HINT})")
    return args, overrides


def stage(name: str, cmd: list[str], log_line: str) -> float:
    """Run one stage in a subprocess (its output shown as it comes); its seconds."""
    print(f"\n== self_train: {log_line} ==\n$ {' '.join(cmd)}", flush=True)
    start = time.perf_counter()
    if subprocess.run(cmd).returncode != 0:
        raise SeqsentError(f"the {name} stage failed (its error is above): fix it and run again with a new --out")
    return round(time.perf_counter() - start, 1)


def run_metrics(run_dir: Path) -> dict:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {k: metrics.get(k) for k in KEPT}


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"  # n/a: a run with test=false


@report_errors
def main(argv: list[str]) -> dict:
    args, overrides = parse_args(argv)
    out: Path = args.out.expanduser()
    if out.exists() and not out.is_dir():
        raise SeqsentError(f"--out {out} is a file: pass a new --out directory")
    if out.exists() and any(out.iterdir()):
        raise SeqsentError(f"{out} is not empty: pass a new --out directory (earlier runs are never overwritten)")
    load_splits(args.data, ("unsupervised",), option="--data")  # bad data fails here, before any directory is made
    out.mkdir(parents=True, exist_ok=True)
    train = [sys.executable, "-m", "seqsent.train", f"data.path={args.data}"]
    summary: dict = {"out": str(out), "data": args.data, "overrides": overrides, "teachers": []}
    for i, seed in enumerate(args.teacher_seeds, 1):
        run_dir = out / f"teacher_s{seed}"
        cmd = [*train, f"seed={seed}", "run_name=teacher", *overrides, f"hydra.run.dir={run_dir}"]
        seconds = stage("teacher", cmd, f"teacher {i}/{len(args.teacher_seeds)} (seed {seed})")
        summary["teachers"].append({"run_dir": str(run_dir), "seconds": seconds, **run_metrics(run_dir)})
    soft = out / "soft_labels.parquet"
    ckpts = [t["best_ckpt"] for t in summary["teachers"]]
    cmd = [sys.executable, str(SOFT_LABEL), "--data", args.data, "--out", str(soft), *ckpts]
    summary["soft_labels"] = {"file": str(soft), "seconds": stage("soft-label", cmd, "soft labels")}
    run_dir = out / "student"
    cmd = [
        *train, "experiment=student", f"data.soft_labels={soft}", f"seed={args.seed}", *overrides,
        f"hydra.run.dir={run_dir}",
    ]  # fmt: skip
    seconds = stage("student", cmd, f"student (seed {args.seed})")
    summary["student"] = {"run_dir": str(run_dir), "seconds": seconds, **run_metrics(run_dir)}
    summary["total_seconds"] = round(
        sum(t["seconds"] for t in summary["teachers"]) + summary["soft_labels"]["seconds"] + seconds, 1
    )
    write_json(out / "summary.json", summary)
    print(json.dumps(summary, indent=2))
    teachers = ", ".join(_fmt(t["test/acc"]) for t in summary["teachers"])
    print(
        f"self_train: teachers test/acc {teachers}; student test/acc {_fmt(summary['student']['test/acc'])} "
        f"(val/acc_best {_fmt(summary['student']['val/acc_best'])}); {summary['total_seconds']:.0f}s in all; "
        f"summary in {out / 'summary.json'}",
        file=sys.stderr,
    )
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
