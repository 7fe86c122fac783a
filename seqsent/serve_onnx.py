"""Classify raw reviews with an exported ONNX model, without torch or Lightning (numpy, onnxruntime, tokenizers).

    python -m seqsent.export ckpt_path=.../last.ckpt format=onnx out=exported/   # once, with seqsent[export]
    python -m seqsent.serve_onnx exported/ text="A wonderful film." text="Dull."

Prints one JSON object per review: `{"label": <most probable class's name>, "probabilities": {<class
name>: p, ...}}`. In Python: `OnnxPredictor("exported/").predict(texts)` gives what
`seqsent.predict.predict_texts` gives on the checkpoint: P(class 1) per text for a two-class model,
else each class's probability per text (as a numpy array). Reviews are tokenized, truncated and padded
as seqsent does (the checkpoint's `tokenizer.json` and `preprocessing.json` beside the model).
Options: `batch_size=` (256), `max_chars=` (reviews longer than this many characters are cut before
tokenizing; 100000).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from seqsent.errors import SeqsentError, prediction_options, report_errors, run_or_help

MODEL_FILE, TOKENIZER_FILE, PREPROCESSING_FILE = "model.onnx", "tokenizer.json", "preprocessing.json"
OPTIONS = {"text", "batch_size", "max_chars"}
USAGE = 'usage: python -m seqsent.serve_onnx DIR text="a review" [text="another"]'


class OnnxPredictor:
    """Class probabilities for raw texts from a folder `seqsent.export format=onnx` wrote."""

    def __init__(self, folder: str | Path, threads: int = 0):
        """`threads`: onnxruntime's intra-op threads (0: its default, all cores)."""
        folder = Path(folder).expanduser()
        for name in (MODEL_FILE, TOKENIZER_FILE, PREPROCESSING_FILE):
            if not (folder / name).is_file():
                raise SeqsentError(
                    f"{folder / name} does not exist: give the out= folder of seqsent.export format=onnx"
                )
        try:
            import onnxruntime
        except ImportError:
            raise SeqsentError("seqsent.serve_onnx needs onnxruntime: pip install onnxruntime") from None
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(
            str(folder / MODEL_FILE), options, providers=["CPUExecutionProvider"]
        )
        self.tokenizer = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
        self.settings: dict[str, Any] = json.loads((folder / PREPROCESSING_FILE).read_text())
        num_classes = self.settings["num_classes"]
        default = ["negative", "positive"] if num_classes == 2 else [str(c) for c in range(num_classes)]
        self.label_names: list[str] = self.settings["label_names"] or default

    def encode(self, texts: list[str], max_chars: int = 100_000) -> list[list[int]]:
        """Token ids per text, truncated to max_len as seqsent does (an empty review is one `<unk>`)."""
        s = self.settings
        encodings = self.tokenizer.encode_batch_fast([t[:max_chars] for t in texts], add_special_tokens=False)
        ids = [enc.ids or [s["unk_id"]] for enc in encodings]
        return [row[-s["max_len"] :] if s["truncation"] == "pre" else row[: s["max_len"]] for row in ids]

    def batch(self, rows: list[list[int]]) -> dict[str, np.ndarray]:
        """The model's inputs: ids padded to the longest row on the checkpoint's side, and the lengths."""
        lengths = np.array([len(row) for row in rows], dtype=np.int64)
        tokens = np.full((len(rows), lengths.max()), self.settings["pad_id"], dtype=np.int64)
        for i, row in enumerate(rows):
            if self.settings["padding"] == "pre":
                tokens[i, tokens.shape[1] - len(row) :] = row
            else:
                tokens[i, : len(row)] = row
        return {"tokens": tokens, "lengths": lengths}

    def predict(self, texts: list[str], batch_size: int = 256, max_chars: int = 100_000) -> np.ndarray:
        """P(class 1) (N,) for a two-class model, else (N, classes): seqsent.predict's probabilities."""
        rows = self.encode(texts, max_chars)
        outputs = [
            self.session.run(None, self.batch(rows[start : start + batch_size]))[0]
            for start in range(0, len(rows), batch_size)
        ]
        return np.concatenate(outputs) if outputs else np.zeros((0,), np.float32)

    def class_probabilities(self, probs: np.ndarray) -> np.ndarray:
        """Every class's probability (N, classes), also for a two-class model's P(class 1)."""
        return np.stack([1 - probs, probs], axis=1) if probs.ndim == 1 else probs


def parse_args(argv: list[str]) -> tuple[str, dict[str, list[str]]]:
    """The folder, then `key=value` options (`text=` may repeat)."""
    if not argv or "=" in argv[0]:
        raise SeqsentError(f"give the exported folder first: {USAGE}")
    args: dict[str, list[str]] = {}
    for arg in argv[1:]:
        key, sep, value = arg.partition("=")
        if not sep or key not in OPTIONS:
            raise SeqsentError(f"unknown argument {arg[:60]!r}: {USAGE}")
        args.setdefault(key, []).append(value)
    if "text" not in args:
        raise SeqsentError(f"give text=...: {USAGE}")
    return argv[0], args


@report_errors
def run(argv: list[str]) -> np.ndarray:
    folder, args = parse_args(argv)
    texts = args["text"]
    batch_size, max_chars = prediction_options(texts, args)
    predictor = OnnxPredictor(folder)
    probs = predictor.predict(texts, batch_size, max_chars)
    for row in predictor.class_probabilities(probs):
        named = {name: round(float(p), 6) for name, p in zip(predictor.label_names, row)}
        print(json.dumps({"label": predictor.label_names[int(row.argmax())], "probabilities": named}))
    return probs


def main() -> None:
    """Console entry point; `--help` prints the usage above."""
    run_or_help(__doc__, run, sys.argv[1:])


if __name__ == "__main__":
    main()
