"""Bad labels, text columns, paths and cache directories: one-line `SeqsentError`s (or, for one class,
a warning), never a silent run or a traceback; nothing already written is damaged."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import load_error
from torch.utils.data.distributed import DistributedSampler

from seqsent.data import BucketBatchSampler, IMDBDataModule, SyntheticDataModule, cache
from seqsent.data.synthetic import make_reviews, write_parquet_dir
from seqsent.data.vocab import UNK_ID, encode, train_tokenizer
from seqsent.errors import SeqsentError

TRAIN = "train-00000-of-00001.parquet"


def data_with_train(root: Path, text: pa.Array, label: pa.Array) -> Path:
    """`root` holding a train file of these columns and a good test file."""
    write_parquet_dir(root, {"test": make_reviews(10, 0)})
    pq.write_table(pa.table({"text": text, "label": label}), root / TRAIN)
    return root


TEXTS = pa.array([f"review {i} good" for i in range(10)])


@pytest.mark.parametrize("labels", [[0.9, 0.4] * 5, [0.0, 1.0, 0.5, 1.0, 0.0] * 2])
def test_fractional_labels_are_refused_not_truncated(tmp_path: Path, labels: list[float]) -> None:
    message = load_error(data_with_train(tmp_path / "d", TEXTS, pa.array(labels, pa.float64())))
    assert TRAIN in message and "fractional labels" in message and "data.soft_labels" in message


def test_whole_float_labels_still_load(tmp_path: Path) -> None:
    dm = IMDBDataModule(path=str(data_with_train(tmp_path / "d", TEXTS, pa.array([0.0, 1.0] * 5))), vocab_size=50)
    dm.setup()
    assert dm.data.splits["train"].labels.tolist() == [0, 1] * 5


@pytest.mark.parametrize("labels", [pa.array([None] * 10, pa.null()), pa.array([b"pos", b"neg"] * 5, pa.binary())])
def test_labels_that_are_not_labels(tmp_path: Path, labels: pa.Array) -> None:
    message = load_error(data_with_train(tmp_path / "d", TEXTS, labels))
    assert "column 'label'" in message and TRAIN in message and "labels must be 0 or 1" in message


def test_missing_labels(tmp_path: Path) -> None:
    message = load_error(data_with_train(tmp_path / "d", TEXTS, pa.array([0, None] * 5, pa.int64())))
    assert TRAIN in message and "missing labels" in message


@pytest.mark.parametrize(
    "text",
    [
        pa.array([b"good film"] * 10, pa.binary()),
        pa.array(list(range(10)), pa.int64()),
        pa.array([None] * 10, pa.null()),
        pa.array([None] * 10, pa.string()),
    ],
    ids=["binary", "integer", "null-typed", "all-null"],
)
def test_a_text_column_without_text(tmp_path: Path, text: pa.Array) -> None:
    message = load_error(data_with_train(tmp_path / "d", text, pa.array([0, 1] * 5)))
    assert "column 'text'" in message and TRAIN in message


def test_a_training_split_of_one_class_warns(tmp_path: Path) -> None:
    data_with_train(tmp_path / "d", TEXTS, pa.array([1] * 10))
    with pytest.warns(UserWarning, match="every training review .* has label 1"):
        IMDBDataModule(path=str(tmp_path / "d"), vocab_size=50).setup()
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        data_with_train(tmp_path / "both", TEXTS, pa.array([0, 1] * 5))
        IMDBDataModule(path=str(tmp_path / "both"), vocab_size=50).setup()


def test_a_data_path_that_is_a_file(tmp_path: Path) -> None:
    file = tmp_path / "imdb.parquet"
    file.write_text("x")
    message = load_error(file)
    assert "is a file" in message and "does not exist" not in message
    assert "SEQSENT_IMDB_DIR" in message and "data.path" in message


def test_a_directory_where_a_review_file_should_be(tmp_path: Path) -> None:
    root = tmp_path / "aclImdb"
    for split in ("train", "test"):
        for name in ("neg", "pos"):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(4):
                (folder / f"{i}_5.txt").write_text(f"{name} review {i}")
    (root / "train" / "pos" / "9_5.txt").mkdir()
    message = load_error(tmp_path, val_fraction=0.25)
    assert "9_5.txt" in message and "not a review file" in message


def test_a_directory_where_a_parquet_file_should_be(tmp_path: Path) -> None:
    write_parquet_dir(tmp_path / "d", {"test": make_reviews(10, 0)})
    (tmp_path / "d" / TRAIN).mkdir()
    assert f"{TRAIN} is a directory" in load_error(tmp_path / "d")


def test_a_cache_dir_that_is_a_file_is_named_and_left_alone(imdb_dir: Path, tmp_path: Path) -> None:
    file = tmp_path / "cache-file"
    file.write_text("mine")
    for cache_dir in (file, file / "below"):
        message = load_error(imdb_dir, cache_dir=str(cache_dir))
        assert str(cache_dir) in message and "data.cache_dir" in message and "SEQSENT_CACHE_DIR" in message
    assert file.read_text() == "mine"
    with pytest.raises(SeqsentError, match="cache-file"):
        SyntheticDataModule(n_train=20, n_test=10, vocab_size=50, cache_dir=str(file)).prepare_data()


def test_an_unwritable_cache_dir_fails_before_the_work_and_keeps_its_entries(
    imdb_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache_dir = tmp_path / "c"
    first = IMDBDataModule(path=str(imdb_dir), vocab_size=50, cache_dir=str(cache_dir))
    first.setup()

    real_mkdir = os.mkdir

    def mkdir(path, *args, **kwargs):  # the OS's answers in a read-only directory (root ignores chmod)
        if Path(path).parent == cache_dir and not Path(path).exists():
            raise PermissionError(13, "Permission denied", str(path))
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(cache, "load_splits", lambda *a, **k: pytest.fail("loaded data it cannot cache"))
    with pytest.raises(SeqsentError) as info:
        IMDBDataModule(path=str(imdb_dir), vocab_size=60, cache_dir=str(cache_dir)).setup()
    message = str(info.value)
    assert str(cache_dir) in message and "Permission denied" in message and "data.cache_dir" in message
    again = IMDBDataModule(path=str(imdb_dir), vocab_size=50, cache_dir=str(cache_dir))
    again.setup()  # a read-only cache still serves what it holds
    assert not again.data.built and again.tokenizer_json == first.tokenizer_json


def test_a_full_disk_while_writing_the_cache(imdb_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache_dir = tmp_path / "c"
    IMDBDataModule(path=str(imdb_dir), vocab_size=50, cache_dir=str(cache_dir)).setup()
    before = sorted(p.name for p in cache_dir.iterdir())

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache.np, "save", full)
    with pytest.raises(SeqsentError, match="No space left on device.*data.cache_dir"):
        IMDBDataModule(path=str(imdb_dir), vocab_size=60, cache_dir=str(cache_dir)).setup()
    assert sorted(p.name for p in cache_dir.iterdir()) == before  # no half-written entry, no temporary left


def test_the_batch_sampler_refuses_lightnings_distributed_sampler() -> None:
    """Under DDP with `use_distributed_sampler=True`, Lightning re-creates a custom batch sampler as
    `cls(sampler, batch_size=..., drop_last=...)`; ours shards itself, so that is a one-line error."""
    lengths = np.ones(40, dtype=np.int64)
    sampler = BucketBatchSampler(lengths, 8)
    injected = DistributedSampler(range(40), num_replicas=2, rank=0)
    with pytest.raises(SeqsentError, match="trainer=ddp"):
        type(sampler)(injected, batch_size=sampler.batch_size, drop_last=sampler.drop_last)


def test_encode_gives_the_tokenizers_ids_across_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    texts = ["Great film!", "", "café <br />naïve ΣΑΣ", "a <pad> b", "  <br /> ", "the end."] * 3
    tok = train_tokenizer(texts, vocab_size=20)
    monkeypatch.setattr("seqsent.data.vocab.ENCODE_BATCH", 4)
    ids, offsets = encode(tok, texts)
    assert ids.dtype == np.int32 and offsets.dtype == np.int64 and len(offsets) == len(texts) + 1
    for i, text in enumerate(texts):
        assert ids[offsets[i] : offsets[i + 1]].tolist() == (tok.encode(text, add_special_tokens=False).ids or [UNK_ID])
