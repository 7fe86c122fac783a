"""Shared fixtures: isolated cache/output dirs and small generated IMDB-like parquet data."""

from __future__ import annotations

import os
from pathlib import Path

# One thread per process, set before torch loads (also inherited by the training subprocesses): the
# test models are tiny, and on a busy 2-core machine two spinning OpenMP threads stall each other.
os.environ.setdefault("OMP_NUM_THREADS", "1")

from collections.abc import Iterator  # noqa: E402

import pytest  # noqa: E402
from hydra.core.global_hydra import GlobalHydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402

from seqsent.data.synthetic import make_reviews, write_parquet_dir  # noqa: E402

REAL_IMDB_DIR = os.environ.get("SEQSENT_IMDB_DIR")
REAL_DATA_DIR = os.environ.get("SEQSENT_DATA_DIR")


ISOLATED = ("SEQSENT_CACHE_DIR", "SEQSENT_OUTPUT_DIR", "SEQSENT_IMDB_DIR", "SEQSENT_DATA_DIR")


@pytest.fixture(scope="session", autouse=True)
def isolated_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The same isolation for module-scoped fixtures, which are built before `isolated_dirs` runs:
    a session cache and output dir, and no real data directory."""
    saved = {key: os.environ.get(key) for key in ISOLATED}
    root = tmp_path_factory.mktemp("session")
    os.environ["SEQSENT_CACHE_DIR"], os.environ["SEQSENT_OUTPUT_DIR"] = str(root / "cache"), str(root / "runs")
    os.environ.pop("SEQSENT_IMDB_DIR", None)
    os.environ.pop("SEQSENT_DATA_DIR", None)
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test writes its cache and runs under its own tmp dir, never ~/.cache or outputs/."""
    monkeypatch.setenv("SEQSENT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("SEQSENT_OUTPUT_DIR", str(tmp_path / "runs"))
    monkeypatch.delenv("SEQSENT_IMDB_DIR", raising=False)
    monkeypatch.delenv("SEQSENT_DATA_DIR", raising=False)
    return tmp_path


@pytest.fixture(autouse=True)
def no_hydra_state_left() -> Iterator[None]:
    """Tests that compose configs in-process leave no global Hydra state to the next test (a run
    config left set would change how a later in-process error is reported)."""
    yield
    GlobalHydra.instance().clear()
    HydraConfig.instance().cfg = None


@pytest.fixture
def imdb_dir(tmp_path: Path) -> Path:
    """A small parquet directory with the Hub's schema (train 200, test 100 reviews)."""
    root = tmp_path / "imdb"
    write_parquet_dir(root, {"train": make_reviews(200, seed=1), "test": make_reviews(100, seed=2)})
    return root


def real_imdb_dir() -> Path | None:
    """The real IMDB parquet directory from `$SEQSENT_IMDB_DIR` as it was when pytest started (the
    autouse fixture hides it from the tests themselves), or None: tests that want it skip then."""
    path = REAL_IMDB_DIR
    return Path(path) if path and any(Path(path).glob("train-*.parquet")) else None


def real_data_dir(name: str) -> Path | None:
    """`$SEQSENT_DATA_DIR/<name>` as it was when pytest started (hidden from the tests as `real_imdb_dir`'s
    variable is), or None when it holds no training split: tests that want it skip then."""
    path = Path(REAL_DATA_DIR, name) if REAL_DATA_DIR else None
    return path if path and any(path.glob("train-*.parquet")) else None
