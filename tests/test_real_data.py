"""The real IMDB files (`$SEQSENT_IMDB_DIR`, e.g. ../shared/data/imdb in CI): sizes, labels, split,
vocabulary and cache; SST-2 and TREC-6 from `$SEQSENT_DATA_DIR` (e.g. ../shared/data) through their configs.
Each is skipped when its directory is not there."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import real_data_dir, real_imdb_dir
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from seqsent.data import IMDBDataModule
from seqsent.utils import config_dir, register_resolvers

REAL = real_imdb_dir()
pytestmark = pytest.mark.real_data


@pytest.mark.skipif(REAL is None, reason="set SEQSENT_IMDB_DIR to the IMDB parquet directory")
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


@pytest.mark.parametrize(
    "name,sizes,names",
    [
        ("sst2", (67_349, 872, 1_821), ["negative", "positive"]),
        ("trec6", (4_900, 544, 499), ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]),  # 5,444 less a tenth
    ],
)
def test_real_sst2_and_trec6_load_through_their_configs(
    name: str, sizes: tuple[int, int, int], names: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = real_data_dir(name)
    if root is None:
        pytest.skip(f"set SEQSENT_DATA_DIR to a directory holding {name}/")
    monkeypatch.setenv("SEQSENT_DATA_DIR", str(root.parent))
    register_resolvers()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        dm = instantiate(compose("train", [f"data={name}"]).data)
    dm.prepare_data()
    dm.setup("fit")
    assert dm.path == str(root) and (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == sizes
    assert dm.label_names == names and dm.num_classes == len(names)
    assert set(np.unique(dm.test_set.labels).tolist()) == set(range(len(names)))
    assert int(dm.train_set.lengths().max()) <= dm.max_len  # short texts: none is cut
