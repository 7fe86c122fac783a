"""Safe checkpoint loading (`weights_only=True`) with one-line errors for bad files."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import torch

from seqsent.errors import SeqsentError
from seqsent.models.classifier import PREPROCESSING_KEY, SequenceClassifier


def missing(path: str | Path) -> str:
    """Why `path` is not a file to read: "<path> is empty", "is a directory" or "does not exist"."""
    if not str(path).strip():
        return "path is empty"
    file = Path(path).expanduser()
    return f"{file} is a directory" if file.is_dir() else f"{file} does not exist"


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint dict on CPU with `weights_only=True` (tensors and plain types only)."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise SeqsentError(f"checkpoint {missing(path)}: pass ckpt_path=<run dir>/checkpoints/<name>.ckpt")
    try:
        ckpt = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
        raise SeqsentError(
            f"{file} is not a readable checkpoint ({first}): pass a .ckpt written by seqsent.train"
        ) from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "hyper_parameters" not in ckpt:
        raise SeqsentError(
            f"{file} is not a seqsent checkpoint (no state_dict/hyper_parameters): "
            "pass a .ckpt written by seqsent.train"
        )
    return ckpt


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
    accepted = inspect.signature(SequenceClassifier.__init__).parameters
    hparams = {k: v for k, v in ckpt["hyper_parameters"].items() if k in accepted}
    try:
        model = SequenceClassifier(**hparams)
        model.load_state_dict(ckpt["state_dict"])
    except (RuntimeError, TypeError, ValueError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
        raise SeqsentError(
            f"{path} does not match SequenceClassifier ({first}): pass a checkpoint written by seqsent.train"
        ) from None
    model.on_load_checkpoint(ckpt)
    return model.to(map_location).eval()


def preprocessing_of(model: SequenceClassifier, path: str | Path) -> dict[str, Any]:
    """The checkpoint's tokenizer and padding settings, or an error when it has none."""
    if not model.preprocessing:
        raise SeqsentError(
            f"{path} carries no vocabulary ({PREPROCESSING_KEY}): it was not trained with seqsent's data module"
        )
    return model.preprocessing
