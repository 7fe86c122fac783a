"""Extending seqsent without editing it: an encoder in the user's own file, picked by a YAML `_target_` in
the user's own config directory, trains end to end; a dataset of more than two classes trains, and its
checkpoint evaluates and predicts with one probability per class."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import TINY_BIGRAMS, TOPICS, run_module, write_topics

from seqsent.checkpoint import load_classifier
from seqsent.predict import predict_texts

TINY = [
    "data.vocab_size=200",
    "data.batch_size=16",
    "model.embed_dim=16",
    TINY_BIGRAMS,
    "trainer.max_epochs=2",
    "trainer.limit_train_batches=6",
]

TOY_MODULE = '''
import torch
from torch import nn


class ToyEncoder(nn.Module):
    """The mean of the true steps' vectors, projected to `size` numbers."""

    def __init__(self, input_size: int, size: int = 4):
        super().__init__()
        self.project = nn.Linear(input_size, size)
        self.output_size = size

    def forward(self, x, lengths):
        lengths = lengths.to(x.device)
        mask = (torch.arange(x.size(1), device=x.device) < lengths[:, None]).unsqueeze(-1)
        return self.project((x * mask).sum(1) / lengths[:, None])
'''


def test_an_encoder_of_ones_own_trains_through_a_yaml_target(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "extending_encoders.py").write_text(TOY_MODULE)
    encoders = tmp_path / "my_conf" / "model" / "encoder"
    encoders.mkdir(parents=True)
    (encoders / "toy.yaml").write_text("_target_: extending_encoders.ToyEncoder\nname: toy\nsize: 6\n")
    proc = run_module(
        "seqsent.train",
        f"hydra.searchpath=[file://{tmp_path / 'my_conf'}]",
        "model/encoder=toy",
        "data=synthetic",
        "data.n_train=200",
        "data.n_test=40",
        *TINY,
        env={"PYTHONPATH": str(tmp_path), "SEQSENT_CACHE_DIR": str(tmp_path / "cache"), "SEQSENT_OUTPUT_DIR": "runs"},
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = (tmp_path / "runs").glob("*/*_toy_*")  # the run is named after the encoder
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and 0.0 <= metrics["test/acc"] <= 1.0
    monkeypatch.syspath_prepend(str(tmp_path))  # the checkpoint names the class: importable to load it
    model = load_classifier(metrics["best_ckpt"])
    assert type(model.net.encoder).__name__ == "ToyEncoder" and model.net.encoder.output_size == 6
    assert model.hparams.encoder == {"_target_": "extending_encoders.ToyEncoder", "name": "toy", "size": 6}
    assert all(0.0 <= p <= 1.0 for p in predict_texts(model, ["a great film", "dull"]))


@pytest.fixture(scope="module")
def topic_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("topics")
    write_topics(root / "topics")
    data = [f"data.path={root / 'topics'}", "data.text_column=question", "data.label_column=topic"]
    proc = run_module(
        "seqsent.train",
        *data,
        "model/encoder=cnn",
        "model.dropout=0",
        *TINY,
        "trainer.max_epochs=4",
        "trainer.limit_train_batches=null",
        f"hydra.run.dir={root / 'run'}",
        env={"SEQSENT_CACHE_DIR": str(root / "cache")},
        cwd=root,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root, json.loads((root / "run" / "metrics.json").read_text())


def test_more_than_two_classes_train_with_accuracy_and_macro_f1(topic_run: tuple[Path, dict]) -> None:
    root, metrics = topic_run
    assert {"test/acc", "test/f1", "test/loss", "val/acc_best"} <= set(metrics) and "test/auroc" not in metrics
    assert metrics["test/acc"] > 0.5, metrics  # three topics, chance 1/3
    model = load_classifier(metrics["best_ckpt"])
    assert model.hparams.num_classes == 3 and model.preprocessing["label_names"] == sorted(TOPICS)


def test_predict_prints_each_label_names_probability(topic_run: tuple[Path, dict]) -> None:
    root, metrics = topic_run
    proc = run_module("seqsent.predict", f"ckpt_path={metrics['best_ckpt']}", "text=where is the cat", "text=rice")
    assert proc.returncode == 0, proc.stderr[-2000:]
    header, *lines = proc.stdout.strip().splitlines()
    assert header == "p(animal)\tp(city)\tp(food)\treview"
    for line, text in zip(lines, ["where is the cat", "rice"], strict=True):
        *probs, shown = line.split("\t")
        assert shown == text and sum(map(float, probs)) == pytest.approx(1.0, abs=1e-3)


def test_eval_tests_on_the_recorded_data_and_refuses_another_class_count(topic_run: tuple[Path, dict]) -> None:
    root, metrics = topic_run
    env = {"SEQSENT_CACHE_DIR": str(root / "cache")}
    ckpt = metrics["best_ckpt"]
    proc = run_module("seqsent.eval", f"ckpt_path={ckpt}", f"hydra.run.dir={root / 'ev'}", env=env, cwd=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    evaluated = json.loads((root / "ev" / "metrics.json").read_text())
    assert evaluated["test/acc"] == pytest.approx(metrics["test/acc"], abs=1e-6)
    assert evaluated["test/f1"] == pytest.approx(metrics["test/f1"], abs=1e-6)
    proc = run_module("seqsent.eval", f"ckpt_path={ckpt}", "data=synthetic", f"hydra.run.dir={root / 'ev2'}", env=env)
    error = proc.stderr.strip().splitlines()[-1]  # after the data's own progress lines
    assert proc.returncode == 2 and error.startswith(f"error: {ckpt} classifies 3 classes but the data "), error
    assert error.endswith("has 2: give the data it was trained on (data=<name> or data.path=...)")


def test_a_configured_class_count_other_than_the_datas_is_refused(tmp_path: Path) -> None:
    write_topics(tmp_path / "topics")
    data = [f"data.path={tmp_path / 'topics'}", "data.text_column=question", "data.label_column=topic"]
    proc = run_module(
        "seqsent.train",
        *data,
        "model.num_classes=2",
        *TINY,
        f"hydra.run.dir={tmp_path / 'run'}",
        env={"SEQSENT_CACHE_DIR": str(tmp_path / "cache")},
    )
    error = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 2 and error.startswith("error: model.num_classes=2 but the data ("), error
    assert error.endswith("has 3 classes (animal, city, food): use model.num_classes=null (the data's count)")
