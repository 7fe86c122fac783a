"""Inference throughput from raw text: torch eager (`seqsent.predict.predict_texts`), onnxruntime
(`seqsent.serve_onnx.OnnxPredictor` on the `seqsent.export format=onnx` export) and the
`format=torch_export` program run by torch, in reviews per second at batch 1 and batch 64,
tokenization included. Prints JSON on stdout and progress on stderr. Not part of
the installed package; results and their reading: docs/speed.md. Needs `pip install seqsent[export]`.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/inference.py --threads 1             # seed-size LSTM
    .venv/bin/python benchmarks/inference.py --size default --threads 2                 # the default recipe's network
    .venv/bin/python benchmarks/inference.py --ckpt outputs/.../checkpoints/last.ckpt   # a trained checkpoint

Without `--ckpt` the network is seeded and untrained (the speed does not depend on the weights), of the
seed sizes (`--size seed`: vocabulary 10000, max_len 200, a one-way LSTM of 128 over 128-wide word
vectors) or of the default recipe (`--size default`: vocabulary 50000, max_len 500, a bidirectional
max-pooled LSTM of 128 over 256-wide word and 64-wide hashed bigram vectors), with a vocabulary built
from generated reviews of IMDB's length profile (`bench.imdb_like_reviews`), which are also the reviews
classified. Each rate is the best of `--repeats` passes over the same `--reviews` reviews, in their
generated order (batches padded to their longest review). `max_abs_difference` compares each export's
probabilities with torch eager's.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import onnxruntime
import torch
from bench import describe_device, imdb_like_reviews, log

from seqsent.checkpoint import load_classifier
from seqsent.data.vocab import PAD_ID, train_tokenizer
from seqsent.export import export
from seqsent.models import SequenceClassifier
from seqsent.predict import predict_texts
from seqsent.serve_onnx import OnnxPredictor

SIZES: dict[str, dict[str, Any]] = {
    "seed": {
        "vocab_size": 10_000, "max_len": 200, "embed_dim": 128, "encoder": {"name": "lstm", "hidden_size": 128},
    },
    "default": {
        "vocab_size": 50_000, "max_len": 500, "embed_dim": 256, "bigram_buckets": 262_144, "bigram_dim": 64,
        "encoder": {"name": "lstm", "hidden_size": 128, "bidirectional": True, "pooling": "max"},
    },
}  # fmt: skip
BATCH_SIZES = (1, 64)


def untrained(size: str, texts: list[str]) -> SequenceClassifier:
    """A seeded classifier of `SIZES[size]` with a vocabulary built from `texts`, as a checkpoint carries."""
    settings = dict(SIZES[size])
    max_len = settings.pop("max_len")
    torch.manual_seed(0)
    model = SequenceClassifier(**settings).eval()
    tokenizer = train_tokenizer(texts, settings["vocab_size"])
    model.preprocessing = {
        "tokenizer_json": tokenizer.to_str(), "max_len": max_len, "padding": "pre", "truncation": "pre",
        "pad_id": PAD_ID, "label_names": ["negative", "positive"],
    }  # fmt: skip
    return model


def best_rate(predict: Callable[[list[str], int], Any], texts: list[str], batch_size: int, repeats: int) -> float:
    """Reviews per second of the fastest of `repeats` passes of `predict(texts, batch_size)`, after a warm-up."""
    predict(texts[: 2 * batch_size], batch_size)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        predict(texts, batch_size)
        best = min(best, time.perf_counter() - start)
    return len(texts) / best


@torch.inference_mode()
def run_program(program: torch.nn.Module, predictor: OnnxPredictor, texts: list[str], batch_size: int) -> np.ndarray:
    """The torch.export program's probabilities, on the ONNX predictor's tokens (the same preprocessing)."""
    rows = predictor.encode(texts)
    batches = (predictor.batch(rows[start : start + batch_size]) for start in range(0, len(rows), batch_size))
    return np.concatenate([program(*(torch.from_numpy(a) for a in inputs.values())).numpy() for inputs in batches])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", help="a trained checkpoint (default: an untrained network of --size)")
    parser.add_argument("--size", choices=sorted(SIZES), default="seed")
    parser.add_argument("--reviews", type=int, default=512, help="reviews classified per pass")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch's and onnxruntime's intra-op threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    texts = imdb_like_reviews(args.reviews, seed=1)[0]
    model = load_classifier(args.ckpt) if args.ckpt else untrained(args.size, imdb_like_reviews(5000, seed=0)[0])
    with tempfile.TemporaryDirectory() as folder:
        log("exporting to ONNX and torch.export")
        export(model, "onnx", folder)
        onnx_size_mb = os.path.getsize(os.path.join(folder, "model.onnx")) / 2**20
        predictor = OnnxPredictor(folder, threads=args.threads)
        program = torch.export.load(str(export(model, "torch_export", folder))).module()
        runtimes = {
            "torch_eager": lambda texts, batch: predict_texts(model, texts, batch_size=batch),
            "onnxruntime": lambda texts, batch: predictor.predict(texts, batch_size=batch),
            "torch_export": lambda texts, batch: run_program(program, predictor, texts, batch),
        }
        rates: dict[str, dict[str, float]] = {}
        for name, predict in runtimes.items():
            for batch in BATCH_SIZES:
                log(f"{name} at batch {batch}")
                rates.setdefault(name, {})[f"batch_{batch}"] = round(best_rate(predict, texts, batch, args.repeats), 1)
        expected = np.asarray(runtimes["torch_eager"](texts, 64))
        gaps = {name: float(np.abs(runtimes[name](texts, 64) - expected).max()) for name in list(runtimes)[1:]}
    result = {
        "reviews_per_second": rates,
        "max_abs_difference": gaps,
        "model": args.ckpt or f"untrained, --size {args.size}: {SIZES[args.size]}",
        "onnx_file_mb": round(onnx_size_mb, 1),
        "reviews": args.reviews,
        "mean_words": round(float(np.mean([len(t.split()) for t in texts])), 1),
        "threads": args.threads,
        "device": describe_device(torch.device("cpu")),
        "versions": {"torch": torch.__version__, "onnxruntime": onnxruntime.__version__},
        "load_average": os.getloadavg(),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
