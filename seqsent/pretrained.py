"""`save_pretrained` / `from_pretrained`: a classifier as a folder laid out like a Hugging Face Hub model
repository (weights, config, vocabulary and a model card), made and read without network.

    python -m seqsent.export ckpt_path=outputs/.../checkpoints/last.ckpt format=pretrained out=my-model/

    from seqsent.pretrained import from_pretrained, save_pretrained
    model = from_pretrained("my-model/")            # a SequenceClassifier, as load_classifier gives
    save_pretrained(model, "copy/", metrics={"test/acc": 0.9})

The folder holds `pytorch_model.bin` (a minimal seqsent checkpoint: weights, network settings, text
preprocessing, data settings; read with `weights_only=True`), `config.json` (the same settings to read,
without the vocabulary), `tokenizer.json` and `README.md`, the model card: the data, the recipe, the
metrics and the intended use. From a checkpoint the card's metrics are its run's `metrics.json`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from seqsent.checkpoint import label_names, load_classifier, preprocessing_of
from seqsent.errors import SeqsentError
from seqsent.models.classifier import FORMAT, FORMAT_KEY, PREPROCESSING_KEY, SequenceClassifier
from seqsent.reliability import DATA_KEY

WEIGHTS, CONFIG, TOKENIZER, CARD = FILES = ("pytorch_model.bin", "config.json", "tokenizer.json", "README.md")
INTENDED_USE = (
    "Research and teaching: classifying English texts like those it was trained on (by default IMDB movie "
    "reviews, positive or negative). It reads words only from its own vocabulary, and its accuracy holds for "
    "text of the training data's kind; check it on your own data before relying on it, and do not use it "
    "for decisions about people."
)


def save_pretrained(model: SequenceClassifier, folder: str | Path, metrics: dict[str, Any] | None = None) -> Path:
    """Write `model` (with its preprocessing) into `folder`; `metrics` go on the model card."""
    prep = preprocessing_of(model, "the model")
    folder = Path(folder).expanduser()
    if folder.exists() and not folder.is_dir():
        raise SeqsentError(f"out={folder} is a file: give a folder to write the model into")
    folder.mkdir(parents=True, exist_ok=True)
    hparams, data = dict(model.hparams), model.data_settings
    checkpoint = {"state_dict": model.state_dict(), "hyper_parameters": hparams, PREPROCESSING_KEY: dict(prep)}
    torch.save({**checkpoint, DATA_KEY: data, FORMAT_KEY: FORMAT}, folder / WEIGHTS)
    settings = {k: v for k, v in prep.items() if k != "tokenizer_json"}
    config = {"seqsent_format": FORMAT, "hyper_parameters": hparams, "preprocessing": settings, "data": data}
    (folder / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    (folder / TOKENIZER).write_text(prep["tokenizer_json"])
    (folder / CARD).write_text(model_card(model, metrics or {}))
    return folder


def from_pretrained(folder: str | Path, map_location: str | torch.device = "cpu") -> SequenceClassifier:
    """The classifier `save_pretrained` wrote into `folder`, in eval mode."""
    folder = Path(folder).expanduser()
    if not (folder / WEIGHTS).is_file():
        raise SeqsentError(f"{folder / WEIGHTS} does not exist: give a folder save_pretrained wrote")
    return load_classifier(folder / WEIGHTS, map_location)


def model_card(model: SequenceClassifier, metrics: dict[str, Any]) -> str:
    """README.md: Hub metadata, then the data, the recipe, the metrics, how to use it and its intended use."""
    hp, data = dict(model.hparams), model.data_settings or {}
    names = label_names(model)
    params = sum(p.numel() for p in model.parameters())
    dataset = data.get("hub_config") or data.get("path") or data.get("_target_", "not recorded").rsplit(".", 1)[-1]
    rows = [
        f"| {key} | {value:.4f} |" if isinstance(value, float) else f"| {key} | {value} |"
        for key, value in metrics.items()
    ]
    lines = [
        "---",
        "library_name: seqsent",
        "pipeline_tag: text-classification",
        "tags: [text-classification, pytorch, seqsent]",
        "---",
        "",
        f"# seqsent {hp['encoder'].get('name', 'custom')} text classifier",
        "",
        "## Data",
        "",
        f"- Dataset: {dataset}",
        f"- Classes: {hp['num_classes']}" + (f" ({', '.join(map(str, names))})" if names else ""),
        f"- Data settings: `{json.dumps(data, sort_keys=True)}`" if data else "- Data settings: not recorded",
        "",
        "## Recipe",
        "",
        f"- Parameters: {params:,}",
        f"- Model settings: `{json.dumps(hp, sort_keys=True)}`",
        "",
        "## Metrics",
        "",
        *(["| metric | value |", "|---|---|", *rows] if rows else ["Not recorded."]),
        "",
        "## Use",
        "",
        "```python",
        "from seqsent.pretrained import from_pretrained",
        "from seqsent.predict import predict_texts",
        "",
        'model = from_pretrained("<this folder>")',
        'print(predict_texts(model, ["A wonderful film."]))',
        "```",
        "",
        "## Intended use",
        "",
        INTENDED_USE,
        "",
    ]
    return "\n".join(lines)


def run_metrics(ckpt_path: str | Path) -> dict[str, Any]:
    """The metrics (`val/...`, `test/...`) of the run a checkpoint belongs to (`<run dir>/metrics.json`), if any."""
    file = Path(ckpt_path).expanduser().resolve().parent.parent / "metrics.json"
    if not file.is_file():
        return {}
    values = json.loads(file.read_text())
    return {k: v for k, v in values.items() if k.startswith(("val/", "test/")) and isinstance(v, (int, float))}
