"""Safe checkpoint loading (`weights_only=True`) with one-line errors for bad files."""

from __future__ import annotations

import inspect
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from seqsent.data.batching import SIDES
from seqsent.data.vocab import tokenizer_from_json
from seqsent.errors import SeqsentError
from seqsent.models.classifier import PREPROCESSING_KEY, SequenceClassifier, check_format
from seqsent.models.language_model import LM_FORMAT_KEY, check_lm_format

FIX = "pass a .ckpt written by seqsent.train"


def missing(path: str | Path) -> str:
    """Why `path` is not a file to read: "<path> is empty", "is a directory" or "does not exist"."""
    if not str(path).strip():
        return "path is empty"
    file = Path(path).expanduser()
    return f"{file} is a directory" if file.is_dir() else f"{file} does not exist"


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint dict on CPU with `weights_only=True` (tensors and plain types only): a classifier's
    (`seqsent.train`) or a language model's (`seqsent.pretrain`), each checked to be of this seqsent's layout."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise SeqsentError(f"checkpoint {missing(path)}: pass ckpt_path=<run dir>/checkpoints/<name>.ckpt")
    try:
        ckpt = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:
        if isinstance(err, pickle.UnpicklingError) and "weights only" in str(err).lower():
            raise SeqsentError(
                f"{file} is not a safe seqsent checkpoint: it needs Python's unrestricted unpickling, which can run "
                f"code, so it was not loaded: {FIX}"
            ) from None
        raise SeqsentError(f"{file} is not a readable checkpoint ({_first_sentence(err)}): {FIX}") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "hyper_parameters" not in ckpt:
        raise SeqsentError(f"{file} is not a seqsent checkpoint (no state_dict/hyper_parameters): {FIX}")
    for key in ("state_dict", "hyper_parameters"):
        if not isinstance(ckpt[key], dict):
            raise SeqsentError(f"{file} is damaged: its {key} is a {type(ckpt[key]).__name__}, not a mapping: {FIX}")
    (check_lm_format if LM_FORMAT_KEY in ckpt else check_format)(ckpt, file)
    return ckpt


def _first_sentence(err: BaseException) -> str:
    """The first sentence of `err`'s message (PyTorch's run to a paragraph), or its type."""
    text = " ".join(str(err).split())
    first = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0].rstrip(".")
    if not first or first.strip("'\"").isdigit():  # a bare key or number says nothing
        return f"{type(err).__name__}: not a PyTorch checkpoint file"
    return first


def existing_checkpoints(paths: list[str]) -> list[Path]:
    """`paths` as files, checked before any slow work; a one-line error for the first that is missing."""
    files = [Path(p).expanduser() for p in paths]
    for file in files:
        if not file.is_file():
            raise SeqsentError(f"checkpoint {missing(file)}: pass the .ckpt files of finished runs")
    return files


def load_classifier(path: str | Path, map_location: str | torch.device = "cpu") -> SequenceClassifier:
    """A `SequenceClassifier` with the checkpoint's weights and text preprocessing, in eval mode."""
    ckpt = read_checkpoint(path)
    if LM_FORMAT_KEY in ckpt:
        raise SeqsentError(
            f"{path} is a language model (seqsent.pretrain), not a classifier: fine-tune one from it with "
            f"python -m seqsent.train model.pretrained={path}"
        )
    accepted = inspect.signature(SequenceClassifier.__init__).parameters
    hparams = {k: v for k, v in ckpt["hyper_parameters"].items() if k in accepted}
    try:
        model = SequenceClassifier(**hparams)
        model.load_state_dict(ckpt["state_dict"])
    except Exception as err:  # whatever the file's values make the constructor or the loading raise
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise SeqsentError(f"{path} does not match SequenceClassifier ({first}): {FIX}") from None
    if ckpt.get(PREPROCESSING_KEY) is not None:
        check_preprocessing(ckpt[PREPROCESSING_KEY], path, model.hparams.num_classes)
    model.on_load_checkpoint(ckpt)
    return model.to(map_location).eval()


def check_preprocessing(prep: Any, path: str | Path, num_classes: int) -> None:
    """A one-line error when a checkpoint's `seqsent_preprocessing` is not what seqsent writes
    (`label_names`, optional, one string per class)."""
    checks = {
        "tokenizer_json": lambda v: isinstance(v, str) and _is_tokenizer(v),
        "max_len": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
        "padding": lambda v: v in SIDES,
        "truncation": lambda v: v in SIDES,
    }
    if not isinstance(prep, dict):
        raise SeqsentError(f"{path} is damaged: its {PREPROCESSING_KEY} is a {type(prep).__name__}: {FIX}")
    for key, valid in checks.items():
        if key not in prep or not valid(prep[key]):
            shown = "missing" if key not in prep else f"{type(prep[key]).__name__} {str(prep[key])[:40]!r}"
            raise SeqsentError(f"{path} is damaged: {PREPROCESSING_KEY}.{key} is {shown}: {FIX}")
    names = prep.get("label_names")
    if names is not None and not (
        isinstance(names, list) and len(names) == num_classes and all(isinstance(n, str) for n in names)
    ):
        raise SeqsentError(
            f"{path} is damaged: {PREPROCESSING_KEY}.label_names is {str(names)[:60]!r}, "
            f"not {num_classes} names (model.num_classes): {FIX}"
        )


def _is_tokenizer(text: str) -> bool:
    try:
        tokenizer_from_json(text)
    except Exception:  # tokenizers raises plain Exceptions for a JSON it cannot use
        return False
    return True


def preprocessing_of(model: SequenceClassifier, path: str | Path) -> dict[str, Any]:
    """The checkpoint's tokenizer and padding settings, or an error when it has none."""
    if not model.preprocessing:
        raise SeqsentError(
            f"{path} carries no vocabulary ({PREPROCESSING_KEY}): it was not trained with seqsent's data module"
        )
    return model.preprocessing  # checked by `load_classifier`, or a data module's own


def label_names(model: SequenceClassifier) -> list[str] | None:
    """The class names the checkpoint's data had (index = class id), or None when it did not record them."""
    return (model.preprocessing or {}).get("label_names")
