"""Every data problem is a one-line SeqsentError naming the file (or setting) and the fix."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import load_error

from seqsent.data import IMDBDataModule, sources
from seqsent.data.synthetic import make_reviews, write_parquet_dir
from seqsent.errors import SeqsentError


def write_table(path: Path, columns: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)


def test_hub_unreachable_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "_hub_reachable", lambda *a, **k: False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    message = load_error("stanfordnlp/imdb")
    assert "SEQSENT_IMDB_DIR" in message and "data.path" in message


def test_missing_directory(tmp_path: Path) -> None:
    message = load_error(tmp_path / "nowhere")
    assert "does not exist" in message and "nowhere" in message


def test_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert "is empty" in load_error(tmp_path / "empty")


def test_missing_split_file(tmp_path: Path) -> None:
    write_parquet_dir(tmp_path / "d", {"train": make_reviews(20, 0)})
    message = load_error(tmp_path / "d")
    assert "test-*.parquet" in message


@pytest.mark.parametrize("missing", ["text", "label"])
def test_missing_column(tmp_path: Path, missing: str) -> None:
    columns = {"text": ["good film"] * 10, "label": [0, 1] * 5}
    columns.pop(missing)
    write_table(tmp_path / "d" / "train-00000-of-00001.parquet", columns)
    write_parquet_dir(tmp_path / "d", {"test": make_reviews(10, 0)})
    message = load_error(tmp_path / "d")
    assert "train-00000-of-00001.parquet" in message and repr(missing) in message


def test_labels_outside_zero_one(tmp_path: Path) -> None:
    write_parquet_dir(
        tmp_path / "d", {"train": (["ok film"] * 10, [0, 1, 2, 1, 0, 1, 0, 1, 0, 7]), "test": make_reviews(10, 0)}
    )
    message = load_error(tmp_path / "d")
    assert "train-00000-of-00001.parquet" in message and "[2, 7]" in message


def test_empty_split(tmp_path: Path) -> None:
    write_parquet_dir(tmp_path / "d", {"train": make_reviews(20, 0), "test": ([], [])})
    message = load_error(tmp_path / "d")
    assert "test-00000-of-00001.parquet" in message and "holds no texts" in message


def test_not_a_parquet_file(tmp_path: Path) -> None:
    write_parquet_dir(tmp_path / "d", {"test": make_reviews(10, 0)})
    (tmp_path / "d" / "train-00000-of-00001.parquet").write_text("not parquet")
    assert "cannot read" in load_error(tmp_path / "d")


def test_acl_imdb_tree_loads_and_reports_missing_folders(tmp_path: Path) -> None:
    root = tmp_path / "aclImdb"
    for split in ("train", "test"):
        for label, name in ((0, "neg"), (1, "pos")):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(6):
                (folder / f"{i}_{7 if label else 2}.txt").write_text(f"{name} review {i} <br />fine")
    dm = IMDBDataModule(path=str(tmp_path), vocab_size=50, val_fraction=0.25)
    dm.setup()
    assert len(dm.train_set) + len(dm.val_set) == 12 and sorted(dm.test_set.labels.tolist()) == [0] * 6 + [1] * 6
    for f in (root / "test" / "pos").iterdir():
        f.unlink()
    (root / "test" / "pos").rmdir()
    assert "test/pos" in load_error(tmp_path, cache_dir=str(tmp_path / "other"))


@pytest.mark.parametrize(
    "kwargs,fragment",
    [
        ({"max_len": 0}, "max_len"),
        ({"val_fraction": 1.5}, "val_fraction"),
        ({"vocab_size": 1}, "vocab_size"),
        ({"padding": "middle"}, "padding"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_nonsense_settings(kwargs: dict, fragment: str) -> None:
    with pytest.raises(SeqsentError, match=fragment):
        IMDBDataModule(path="x", **kwargs)
