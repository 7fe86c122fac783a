"""Benchmark data: IMDB-shaped generated reviews and timed data preparation."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from seqsent.data import IMDBDataModule
from seqsent.data.cache import default_cache_dir
from seqsent.data.synthetic import NEGATIVE, NEUTRAL, POSITIVE, write_parquet_dir

from .common import log


def imdb_like_reviews(
    n: int, seed: int, mean_words: float = 237.0, sigma: float = 0.74, words: int = 40_000
) -> tuple[list[str], list[int]]:
    """`n` reviews with IMDB's length profile and balanced labels.

    Lengths are log-normal (IMDB: median ~174, mean ~230 words, long tail), clipped to 10..2500
    words, which brings the default `mean_words` of 237 to a mean of ~230; words follow a Zipf law
    over `words` ranks (a few real function words and punctuation first, then `w<rank>`); three cue
    words of the label's polarity and at times one of the other replace random words, so a model
    can learn the labels.
    """
    rng = np.random.default_rng(seed)
    mu = math.log(mean_words) - sigma**2 / 2
    lengths = np.clip(np.rint(rng.lognormal(mu, sigma, n)), 10, 2500).astype(np.int64)
    vocab = NEUTRAL[:20] + [",", "."] + [f"w{i}" for i in range(words - 22)]
    probs = np.arange(1, words + 1, dtype=np.float64) ** -1.07
    ids = rng.choice(words, size=int(lengths.sum()), p=probs / probs.sum())
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    labels = np.arange(n) % 2
    rng.shuffle(labels)
    texts = []
    for i in range(n):
        tokens = [vocab[j] for j in ids[offsets[i] : offsets[i + 1]].tolist()]
        major, minor = (POSITIVE, NEGATIVE) if labels[i] else (NEGATIVE, POSITIVE)
        cues = list(rng.choice(major, size=3)) + list(rng.choice(minor, size=int(rng.integers(0, 2))))
        for cue, pos in zip(cues, rng.integers(0, len(tokens), size=len(cues))):
            tokens[int(pos)] = str(cue)
        texts.append(" ".join(tokens).capitalize())
    return texts, labels.tolist()


def synthetic_imdb_dir(n_reviews: int, seed: int = 0, root: Path | None = None) -> Path:
    """A parquet directory with `n_reviews` train and `n_reviews` test reviews, made once per settings."""
    directory = (root or default_cache_dir()) / f"bench-synthetic-n{n_reviews}-s{seed}-v1"
    if not (directory / "test-00000-of-00001.parquet").is_file():
        log(f"generating synthetic IMDB-like data ({n_reviews}+{n_reviews} reviews) in {directory}")
        train = imdb_like_reviews(n_reviews, seed)
        test = imdb_like_reviews(n_reviews, seed + 1)
        write_parquet_dir(directory, {"train": train, "test": test})
    return directory


# -- data preparation --------------------------------------------------------------------------------
@contextlib.contextmanager
def datasets_cache(directory: Path) -> Iterator[None]:
    """Point `datasets`' Arrow cache at `directory`, so a "cold" load really converts the parquet files."""
    import datasets

    old = datasets.config.HF_DATASETS_CACHE
    datasets.config.HF_DATASETS_CACHE = directory
    try:
        yield
    finally:
        datasets.config.HF_DATASETS_CACHE = old


def time_prep(path: Path | str, cache_dir: Path, **data_kwargs: Any) -> tuple[float, IMDBDataModule]:
    """Seconds of `IMDBDataModule.setup()` on a new datamodule (builds or loads the cache), and the module."""
    dm = IMDBDataModule(path=str(path), cache_dir=str(cache_dir), **data_kwargs)
    start = time.perf_counter()
    dm.setup("fit")
    return time.perf_counter() - start, dm
