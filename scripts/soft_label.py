"""Soft-label unlabeled reviews with trained checkpoints (a teacher ensemble) for distillation.

    python scripts/soft_label.py --data ../shared/data/imdb --out soft/unsup.parquet \
        RUN_A/checkpoints/epoch01-val_acc0.9052.ckpt RUN_B/checkpoints/... RUN_C/checkpoints/...
    python -m seqsent.train data.soft_labels=soft/unsup.parquet      # a student on gold + soft labels

Each checkpoint reads the `unsupervised` split (IMDB: 50,000 unlabeled reviews) with its own
vocabulary and settings; their mean positive-class probability is written, with the reviews, to a
new parquet file (`text`, `prob`; the teachers in its metadata); `--hard` writes it rounded to 0/1
(pseudo-labels) instead. Only that split is labeled: a
student never trains on test reviews, and the data module drops any soft-labeled review that is
also a validation or test review. Prints a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from seqsent.allocator import keep_freed_memory
from seqsent.checkpoint import existing_checkpoints, load_classifier
from seqsent.data.soft_labels import write_soft_labels
from seqsent.data.sources import default_path, load_splits
from seqsent.errors import SeqsentError, report_errors
from seqsent.predict import predict_sorted
from seqsent.utils import check_new_output

SPLIT = "unsupervised"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ckpts", nargs="+", help="teacher checkpoints (their probabilities are averaged)")
    parser.add_argument("--data", default=default_path(), help="IMDB directory (default: $SEQSENT_IMDB_DIR)")
    parser.add_argument("--out", type=Path, required=True, help="the soft-label parquet file to write (new)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--limit", type=int, default=0, help="label only the first N reviews (0: all)")
    parser.add_argument("--hard", action="store_true", help="write 0/1 (the mean probability rounded) instead")
    return parser.parse_args(argv)


def validation_split(model: object) -> dict | None:
    """A checkpoint's `{"val_fraction", "split_seed"}` (None for checkpoints from before they were saved)."""
    prep = getattr(model, "preprocessing", None) or {}
    if "val_fraction" not in prep:
        return None
    return {"val_fraction": prep["val_fraction"], "split_seed": prep["split_seed"]}


@report_errors
def main(argv: list[str]) -> dict:
    keep_freed_memory()
    args = parse_args(argv)
    check_new_output(args.out)
    if args.batch_size < 1 or args.limit < 0:
        raise SeqsentError("--batch-size must be >= 1 and --limit >= 0")
    ckpts = existing_checkpoints(args.ckpts)
    split = load_splits(args.data, (SPLIT,), option="--data")[SPLIT]
    texts = split.texts[: args.limit] if args.limit else split.texts
    start, probs, splits = time.perf_counter(), [], []
    for i, ckpt in enumerate(ckpts, 1):
        t0 = time.perf_counter()
        model = load_classifier(ckpt)
        if model.hparams.num_classes != 2:
            raise SeqsentError(
                f"{ckpt} classifies {model.hparams.num_classes} classes: soft labels (one probability per "
                "review) are for two-class teachers"
            )
        splits.append(validation_split(model))
        probs.append(predict_sorted(model, texts, args.batch_size))
        print(
            f"[{i}/{len(ckpts)}] {ckpt}: {len(texts)} reviews, {float((probs[-1] >= 0.5).mean()):.3f} positive "
            f"({time.perf_counter() - t0:.0f}s)",
            file=sys.stderr,
            flush=True,
        )
    mean = np.mean(probs, axis=0).astype(np.float32)
    info = {"source": split.origin, "split": SPLIT, "teachers": [str(c.resolve()) for c in ckpts], "hard": args.hard}
    # which training reviews each teacher validated on: a student must hold out the same ones
    info["teacher_splits"] = splits
    write_soft_labels(args.out, texts, (mean >= 0.5).astype(np.float32) if args.hard else mean, info)
    agreement = [float(((p >= 0.5) == (mean >= 0.5)).mean()) for p in probs]
    summary = {
        **info,
        "out": str(args.out),
        "reviews": len(texts),
        "positive_fraction": float((mean >= 0.5).mean()),
        "confident_fraction": float(((mean < 0.1) | (mean > 0.9)).mean()),
        "teacher_agreement_with_mean": agreement,
        "seconds": round(time.perf_counter() - start, 1),
    }
    print(json.dumps(summary, indent=2))
    print(f"soft labels for {len(texts)} reviews written to {args.out}", file=sys.stderr)
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
