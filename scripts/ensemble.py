"""Test an ensemble: average the class probabilities of several checkpoints.

    python scripts/ensemble.py --data ../shared/data/imdb RUN_A/checkpoints/epoch02-val_acc0.9024.ckpt \
        RUN_B/checkpoints/... RUN_C/checkpoints/... [--out ensemble.json]

Each checkpoint classifies the raw test reviews with its own vocabulary, max_len and padding (they
travel inside it, see `seqsent.predict`), so members may differ in any of those. Prints JSON: each
member's test accuracy, and the ensemble's `test/acc`, `test/f1`, `test/auroc` (the mean of the
members' probabilities, thresholded at 0.5); for more than two classes `test/acc` and macro `test/f1`
of the mean class probabilities (members must classify the same classes). `--out` also writes that
JSON to a new file.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torchmetrics.functional.classification import (
    binary_accuracy,
    binary_auroc,
    binary_f1_score,
    multiclass_accuracy,
    multiclass_f1_score,
)

from seqsent.allocator import keep_freed_memory
from seqsent.checkpoint import existing_checkpoints, load_classifier
from seqsent.data.sources import default_path, load_splits
from seqsent.errors import SeqsentError, report_errors
from seqsent.predict import predict_sorted
from seqsent.utils import check_new_output, write_json


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ckpts", nargs="+", help="checkpoints to average (one or more)")
    parser.add_argument("--data", default=default_path(), help="IMDB directory (default: $SEQSENT_IMDB_DIR)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--out", type=Path, help="also write the JSON here (a new file)")
    return parser.parse_args(argv)


def scores(probs: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Accuracy, F1 and AUROC of P(class 1) (N,) against 0/1 labels; accuracy and macro-F1 of class
    probabilities (N, C) against class ids."""
    if probs.dim() == 2:
        classes = probs.size(1)
        return {
            "test/acc": float(multiclass_accuracy(probs, labels, classes, average="micro")),
            "test/f1": float(multiclass_f1_score(probs, labels, classes, average="macro")),
        }
    return {
        "test/acc": float(binary_accuracy(probs, labels)),
        "test/f1": float(binary_f1_score(probs, labels)),
        "test/auroc": float(binary_auroc(probs, labels)),
    }


def classes(probs: torch.Tensor) -> int:
    return probs.size(1) if probs.dim() == 2 else 2


@report_errors
def main(argv: list[str]) -> dict:
    keep_freed_memory()
    args = parse_args(argv)
    if args.batch_size < 1:
        raise SeqsentError(f"--batch-size {args.batch_size}: use >= 1, e.g. 256")
    ckpts = existing_checkpoints(args.ckpts)
    if args.out is not None:
        check_new_output(args.out)
    test = load_splits(args.data, ("test",), option="--data")["test"]
    labels = torch.from_numpy(test.labels)
    members, all_probs = [], []
    for i, ckpt in enumerate(ckpts, 1):
        start = time.perf_counter()
        probs = torch.from_numpy(predict_sorted(load_classifier(ckpt), test.texts, args.batch_size))
        if all_probs and probs.shape != all_probs[0].shape:
            raise SeqsentError(
                f"{ckpt} classifies {classes(probs)} classes but {ckpts[0]} {classes(all_probs[0])}: "
                "ensemble models of one dataset"
            )
        all_probs.append(probs)
        members.append({"ckpt": str(ckpt.resolve()), **scores(probs, labels)})
        print(
            f"[{i}/{len(ckpts)}] {ckpt}: test/acc {members[-1]['test/acc']:.4f} ({time.perf_counter() - start:.0f}s)",
            file=sys.stderr,
            flush=True,
        )
    ensemble = scores(torch.stack(all_probs).mean(0), labels)
    result = {"data": test.origin, "reviews": len(test.texts), "members": members, "ensemble": ensemble}
    if args.out is not None:
        write_json(args.out, result)
    print(json.dumps(result, indent=2))
    where = f"; written to {args.out}" if args.out is not None else ""
    print(f"ensemble of {len(ckpts)}: test/acc {ensemble['test/acc']:.4f}{where}", file=sys.stderr)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
