"""Where data comes from (one rule for make and the entry points) and the size of `data=synthetic` runs."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from seqsent.data import IMDBDataModule
from seqsent.utils import config_dir, register_resolvers

ROOT = Path(__file__).resolve().parents[1]


def train_config(*overrides: str):
    register_resolvers()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose("train", overrides=list(overrides))


def test_data_path_then_the_environment_then_the_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert IMDBDataModule().path == train_config().data.path == "stanfordnlp/imdb"
    monkeypatch.setenv("SEQSENT_DATA_DIR", str(tmp_path / "root"))
    assert IMDBDataModule().path == train_config().data.path == str(tmp_path / "root" / "imdb")
    monkeypatch.setenv("SEQSENT_IMDB_DIR", str(tmp_path))  # IMDB's own variable first
    assert IMDBDataModule().path == train_config().data.path == str(tmp_path)
    assert IMDBDataModule(path="elsewhere").path == train_config("data.path=elsewhere").data.path == "elsewhere"


@pytest.mark.parametrize(
    "name,hub,local,hub_only",
    [
        ("sst2", "stanfordnlp/sst2", {}, {"text_column": "sentence", "val_split": None, "test_split": "validation"}),
        ("trec6", "CogComp/trec", {"num_classes": 6, "val_fraction": 0.1}, {"label_column": "coarse_label"}),
    ],
)
def test_dataset_configs_read_the_data_dir_else_the_hubs_copy(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str, hub: str, local: dict, hub_only: dict
) -> None:
    """`$SEQSENT_DATA_DIR/<name>` when set, else the Hub id, whose copy names columns and splits its own way."""
    on_hub = train_config(f"data={name}").data
    assert on_hub.path == hub and on_hub._target_ == "seqsent.data.TextClassificationDataModule"
    assert {key: on_hub[key] for key in hub_only} == hub_only
    monkeypatch.setenv("SEQSENT_DATA_DIR", str(tmp_path))
    (tmp_path / name).mkdir()
    here = train_config(f"data={name}").data
    assert here.path == str(tmp_path / name) and here.max_len < 100
    defaults = {"text_column": "text", "label_column": "label", "val_split": "validation", "test_split": "test"}
    assert {key: here[key] for key in [*hub_only, *local]} == {**{k: defaults[k] for k in hub_only}, **local}


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_adds_no_data_directory_of_its_own() -> None:
    """make passes $SEQSENT_IMDB_DIR through as it is: no fallback the entry points would not have."""
    env = {k: v for k, v in os.environ.items() if k != "SEQSENT_IMDB_DIR"}
    show = 'show-data:\n\t@echo "[$$SEQSENT_IMDB_DIR]"'
    out = subprocess.run(
        ["make", "-s", "--no-print-directory", "--eval", show, "show-data"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("model", ["lstm", "rnn", "gru"])
def test_synthetic_runs_carry_a_smoke_sized_model(model: str) -> None:
    cfg = train_config("data=synthetic", f"model={model}")
    classifier = instantiate(cfg.model, num_classes=2)  # model.num_classes: null, the data's (train.py reads it)
    assert sum(p.numel() for p in classifier.parameters()) < 2_000_000
    assert cfg.model.vocab_size == cfg.data.vocab_size
    assert train_config("data=synthetic", "model.bigram_buckets=0").model.bigram_buckets == 0  # still settable
    assert train_config().model.bigram_buckets == train_config("data=imdb").model.bigram_buckets > 100_000
