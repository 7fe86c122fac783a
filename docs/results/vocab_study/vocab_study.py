"""Does the notebook's vocabulary, ranked over train *and test* reviews, explain its higher figures?

`keras.datasets.imdb`, the notebook's data, indexes words "by overall frequency in the dataset",
test reviews included. seqsent builds its vocabulary on the training part only (the issue's rule).
This study trains `experiment=seed_<cell>` through seqsent's own `train()` with each vocabulary;
nothing else differs (same split, seeds, tokenization, recipe). The leaky vocabulary exists only
here, to measure the effect; it is not a seqsent option.

    python docs/results/vocab_study/vocab_study.py --data ../shared/data/imdb --cells lstm,rnn --seeds 0,1,2 \
        --out docs/results/vocab_study

Vocabularies: `train_part` (seqsent's: the 20,000 training reviews left after the validation split)
and `train_and_test` (all 25,000 train-split reviews plus the 25,000 test reviews, as Keras').
Prints one JSON summary and writes `runs.csv` and `summary.json` into `--out`; each run's
directory (checkpoints, TensorBoard, metrics.json) goes under `--work-dir`.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import time
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from seqsent.data.sources import load_splits
from seqsent.data.vocab import train_tokenizer
from seqsent.errors import SeqsentError, report_errors
from seqsent.train import train
from seqsent.utils import config_dir, write_json

VOCABS = ("train_part", "train_and_test")
CELLS = ("rnn", "lstm", "gru")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="IMDB parquet or aclImdb directory")
    parser.add_argument("--cells", default="lstm,rnn", help="comma-separated: rnn,lstm,gru")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated run seeds")
    parser.add_argument("--vocabs", default=",".join(VOCABS), help=f"comma-separated, of {VOCABS}")
    parser.add_argument("--out", default="vocab_study", help="directory for runs.csv and summary.json")
    parser.add_argument("--work-dir", default=None, help="run directories (default: OUT/runs)")
    parser.add_argument(
        "--override", action="append", default=[], help="extra Hydra override for every run, e.g. trainer.max_epochs=1"
    )
    args = parser.parse_args(argv)
    args.cell_list = [c for c in args.cells.split(",") if c]
    try:
        args.seed_list = [int(s) for s in args.seeds.split(",") if s]
    except ValueError:
        raise SeqsentError(f"--seeds {args.seeds}: give whole numbers separated by commas, e.g. 0,1,2") from None
    args.vocab_list = [v for v in args.vocabs.split(",") if v]
    unknown = [v for v in args.vocab_list if v not in VOCABS]
    if unknown:
        raise SeqsentError(f"--vocabs {','.join(unknown)}: use some of {','.join(VOCABS)}")
    unknown = [c for c in args.cell_list if c not in CELLS]
    if unknown or not args.cell_list or not args.seed_list:
        raise SeqsentError(f"--cells {args.cells} --seeds {args.seeds}: use cells of {','.join(CELLS)}, seeds as 0,1")
    if not Path(args.data).expanduser().is_dir():
        raise SeqsentError(f"--data {args.data}: not a directory: give the IMDB parquet directory")
    return args


def leaky_tokenizer_json(path: str, vocab_size: int, punctuation: str) -> str:
    """A vocabulary ranked over every labeled review, train split and test split together."""
    raw = load_splits(path, ("train", "test"), option="--data")
    texts = list(raw["train"].texts) + list(raw["test"].texts)
    return train_tokenizer(texts, vocab_size, 1, punctuation).to_str()


def train_once(
    cell: str, seed: int, vocab: str, data: str, run_dir: Path, leaky: dict[str, str], extra: list[str]
) -> dict:
    """One run of the notebook's recipe with `cell` through seqsent.train's `train()`; returns its metrics."""
    # experiment=seed_lstm model=<cell> is experiment=seed_<cell> for rnn and lstm, and the sweep's gru
    overrides = ["experiment=seed_lstm", f"model={cell}", f"seed={seed}", f"data.path={data}", *extra]
    with initialize_config_dir(config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(run_dir)
        cfg.hydra.job.name = "vocab_study"
        if vocab == "train_and_test":
            key = f"{cfg.data.vocab_size}/{cfg.data.punctuation}"
            if key not in leaky:
                leaky[key] = leaky_tokenizer_json(data, cfg.data.vocab_size, cfg.data.punctuation)
            cfg.data.tokenizer_json = leaky[key]
    HydraConfig.instance().set_config(cfg)  # keeps its own copy of the hydra node
    with open_dict(cfg):
        del cfg["hydra"]  # a Hydra task sees its config without it
    run_dir.mkdir(parents=True, exist_ok=True)
    return train(cfg)


def summarize(rows: list[dict]) -> dict:
    out: dict = {}
    for row in rows:
        out.setdefault(row["cell"], {}).setdefault(row["vocab"], []).append(row["test_acc"])
    return {
        cell: {
            vocab: {
                "test_acc_mean": statistics.mean(accs),
                "test_acc_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                "runs": len(accs),
            }
            for vocab, accs in by_vocab.items()
        }
        for cell, by_vocab in out.items()
    }


@report_errors
def main(argv: list[str]) -> dict:
    args = parse_args(argv)
    data = str(Path(args.data).expanduser().resolve())
    out = Path(args.out)
    work = Path(args.work_dir) if args.work_dir else out / "runs"
    existing = sorted(work.glob("*/metrics.json")) if work.is_dir() else []
    if existing:
        held = existing[0].parent.name
        raise SeqsentError(f"{work} already holds runs ({held}): give another --work-dir or remove it")
    if (out / "runs.csv").exists():
        raise SeqsentError(f"{out / 'runs.csv'} exists: give another --out or move the earlier study away")
    rows, leaky = [], {}
    total = len(args.cell_list) * len(args.seed_list) * len(args.vocab_list)
    start = time.perf_counter()
    for cell in args.cell_list:
        for vocab in args.vocab_list:
            for seed in args.seed_list:
                print(f"[vocab_study] run {len(rows) + 1}/{total}: {cell} seed {seed} vocabulary {vocab}", flush=True)
                run_dir = work / f"{vocab}_{cell}_seed{seed}"
                metrics = train_once(cell, seed, vocab, data, run_dir, leaky, args.override)
                rows.append(
                    {
                        "cell": cell,
                        "vocab": vocab,
                        "seed": seed,
                        "test_acc": metrics["test/acc"],
                        "val_acc_best": metrics["val/acc_best"],
                        "train_seconds": metrics["train_seconds"],
                        "run_dir": metrics["run_dir"],
                    }
                )
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "runs.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    command = "python docs/results/vocab_study/vocab_study.py " + " ".join(argv)
    summary = {"command": command, "summary": summarize(rows)}
    write_json(out / "summary.json", summary)
    print(json.dumps(summary, indent=2))
    minutes = (time.perf_counter() - start) / 60
    print(f"[vocab_study] {len(rows)} runs in {minutes:.1f} min: {out / 'runs.csv'}, {out / 'summary.json'}")
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
