"""Classify raw reviews with a checkpoint alone (its vocabulary travels inside it).

    python -m seqsent.predict ckpt_path=outputs/.../checkpoints/last.ckpt text="A wonderful film."
    python -m seqsent.predict ckpt_path=... file=reviews.txt      # one review per line (blank lines skipped)
    python -m seqsent.predict ckpt_path=... text="..." file=a.txt  # both: the text= reviews come first

A review file holds one review per line: only a newline (LF) ends one, and a CR before it is
dropped. Prints a header line, then one line per review: its probabilities, a tab, the start of
the review on one line (whitespace runs as one space, other control characters escaped, e.g.
`\\x1b`). A two-class checkpoint gives one column, the probability of class 1, headed
`p(<its label name>)` (`p(positive)` when the checkpoint has no label names); a checkpoint of more
classes gives one column per class, `p(<label name>)` in class order.
Options: `batch_size=` (256), `device=` (cpu|cuda), `max_chars=` (reviews longer than this
many characters are cut before tokenizing; 100000).
"""

from __future__ import annotations

import sys
import unicodedata
from pathlib import Path

import numpy as np
import torch

from seqsent.allocator import keep_freed_memory
from seqsent.checkpoint import label_names, load_classifier, missing, preprocessing_of
from seqsent.data.batching import Collator
from seqsent.data.vocab import encode, tokenizer_from_json
from seqsent.errors import SeqsentError, prediction_options, report_errors, run_or_help
from seqsent.models import SequenceClassifier

OPTIONS = {"ckpt_path", "text", "file", "batch_size", "device", "max_chars"}
USAGE = 'usage: python -m seqsent.predict ckpt_path=PATH text="a review" | file=reviews.txt'


def parse_args(argv: list[str]) -> dict[str, list[str]]:
    """`key=value` arguments (Hydra-style, but any text is taken verbatim); `text=` may repeat."""
    args: dict[str, list[str]] = {}
    for arg in argv:
        key, sep, value = arg.partition("=")
        key = key.lstrip("+")
        if not sep or key not in OPTIONS:
            raise SeqsentError(f"unknown argument {arg[:60]!r}: {USAGE}")
        args.setdefault(key, []).append(value)
    if "ckpt_path" not in args:
        raise SeqsentError(f"ckpt_path= is required: {USAGE}")
    if "text" not in args and "file" not in args:
        raise SeqsentError(f"give text=... or file=...: {USAGE}")
    return args


def read_reviews(file: str) -> list[str]:
    path = Path(file).expanduser()
    if not path.is_file():
        raise SeqsentError(f"review file {missing(file)}: pass file=<text file, one review per line>")
    text = path.read_bytes().decode("utf-8", errors="replace")
    # not str.splitlines: it also ends lines at form feeds, \x1c-\x1e, NEL and U+2028/9 inside a review
    all_lines = [line.removesuffix("\r") for line in text.removesuffix("\n").split("\n")]
    lines = [line for line in all_lines if line.strip()]
    if not lines:
        raise SeqsentError(f"review file {path} holds no reviews: put one review per line")
    blank = [n for n, line in enumerate(all_lines, 1) if not line.strip()]
    if blank:  # said, so that output lines are not matched to input lines by position unawares
        shown = ", ".join(map(str, blank[:5])) + (", ..." if len(blank) > 5 else "")
        print(
            f"note: {path}: skipped {len(blank)} blank line(s) ({shown}); each output line shows its review",
            file=sys.stderr,
        )
    return lines


@torch.inference_mode()
def predict_texts(
    model: SequenceClassifier, texts: list[str], batch_size: int = 256, max_chars: int = 100_000
) -> list[float] | list[list[float]]:
    """Class probabilities for raw texts, with the checkpoint's own preprocessing: P(class 1) per text
    for a two-class model, else each class's probability per text."""
    prep = preprocessing_of(model, "the model")
    tokenizer = tokenizer_from_json(prep["tokenizer_json"])
    ids, offsets = encode(tokenizer, [t[:max_chars] for t in texts])
    collate = Collator(prep["max_len"], prep["padding"], prep["truncation"])
    device = next(model.parameters()).device
    probs: list = []
    for start in range(0, len(texts), batch_size):
        items = [(ids[offsets[i] : offsets[i + 1]], 0) for i in range(start, min(start + batch_size, len(texts)))]
        batch = collate(items)
        out = model.predict_step({k: v.to(device) for k, v in batch.items()}, 0)
        probs += out.float().cpu().tolist()
    return probs


def predict_sorted(model: SequenceClassifier, texts: list[str], batch_size: int = 256) -> np.ndarray:
    """`predict_texts` over reviews of similar length together (much less padding), in `texts`' order:
    (N,) or (N, classes)."""
    order = np.argsort([len(t) for t in texts], kind="stable")
    sorted_probs = np.asarray(predict_texts(model, [texts[i] for i in order], batch_size=batch_size), np.float32)
    probs = np.empty_like(sorted_probs)
    probs[order] = sorted_probs
    return probs


def header(model: SequenceClassifier) -> str:
    """`p(<name>)` per printed column, then `review`, tab-separated."""
    names = label_names(model)
    if model.hparams.num_classes == 2:
        columns = [names[1] if names else "positive"]
    else:
        columns = names or [str(c) for c in range(model.hparams.num_classes)]
    return "\t".join([*(f"p({snippet(name, 40)})" for name in columns), "review"])


@report_errors
def run(argv: list[str]) -> list[float] | list[list[float]]:
    keep_freed_memory()
    args = parse_args(argv)
    texts = list(args.get("text", []))
    for file in args.get("file", []):
        texts += read_reviews(file)
    batch_size, max_chars = prediction_options(texts, args)
    device = args.get("device", ["cpu"])[-1]
    check_device(device)
    model = load_classifier(args["ckpt_path"][-1], map_location=device)
    probs = predict_texts(model, texts, batch_size, max_chars)
    print(header(model))
    for prob, text in zip(probs, texts):
        print("\t".join([*(f"{p:.4f}" for p in np.atleast_1d(prob)), snippet(text)]))
    return probs


def check_device(device: str) -> None:
    """A one-line error for a `device=` that is not a device, or a CUDA one without a GPU."""
    try:
        torch.device(device)
    except RuntimeError:
        raise SeqsentError(f"device={device} is not a device: use device=cpu or device=cuda") from None
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SeqsentError("device=cuda but no CUDA GPU is available: use device=cpu")


def snippet(text: str, width: int = 70) -> str:
    """The start of `text` as one safe terminal line: whitespace runs as one space, then every other
    control or format character (escape sequences, bidi overrides) escaped as `\\x1b`, `\\u202e`."""
    start = " ".join(text.split())[:width]
    return "".join(c.encode("unicode_escape").decode() if unicodedata.category(c)[0] == "C" else c for c in start)


def main() -> None:
    """Console entry point; `--help` prints the usage above."""
    run_or_help(__doc__, run, sys.argv[1:])


if __name__ == "__main__":
    main()
