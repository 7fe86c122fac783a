"""The real IMDB files (`$SEQSENT_IMDB_DIR`, e.g. ../shared/data/imdb in CI): sizes, labels, split,
vocabulary and cache. Skipped when the directory is not there."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import real_imdb_dir

from seqsent.data import IMDBDataModule

REAL = real_imdb_dir()
pytestmark = [
    pytest.mark.real_data,
    pytest.mark.skipif(REAL is None, reason="set SEQSENT_IMDB_DIR to the IMDB parquet directory"),
]


def test_real_imdb_loads_splits_and_caches(tmp_path: Path) -> None:
    dm = IMDBDataModule(path=str(REAL), vocab_size=10_000, max_len=200, cache_dir=str(tmp_path / "cache"))
    dm.setup()
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (20_000, 5_000, 25_000)
    for split in ("train", "test"):
        labels = dm.data.splits[split].labels
        assert set(np.unique(labels)) == {0, 1} and abs(labels.mean() - 0.5) < 1e-9
    vocab = dm.preprocessing()["tokenizer_json"]
    assert '"<pad>":0' in vocab.replace(" ", "") and '"br"' not in vocab  # <br /> tags removed
    again = IMDBDataModule(path=str(REAL), vocab_size=10_000, max_len=200, cache_dir=str(tmp_path / "cache"))
    again.setup()
    assert not again.data.built  # read from the cache (its speed is the benchmark's to measure)
    assert again.preprocessing() == dm.preprocessing() and len(again.train_set) == len(dm.train_set)
    batch = next(iter(dm.train_dataloader()))
    assert batch["tokens"].shape[0] == 32 and int(batch["lengths"].max()) <= 200
