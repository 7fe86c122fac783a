"""A small generated review dataset, written as Hub-style parquet files and loaded like IMDB.

python -m seqsent.train data=synthetic trainer.max_epochs=2
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from seqsent.data.cache import cache_writes, default_cache_dir, ensure_cache_dir
from seqsent.data.datamodule import IMDBDataModule
from seqsent.data.soft_labels import write_parquet
from seqsent.data.sources import UNLABELED
from seqsent.errors import check_types

POSITIVE = ["great", "excellent", "wonderful", "loved", "superb", "brilliant", "enjoyable", "moving", "fantastic",
            "best"]  # fmt: skip
NEGATIVE = ["awful", "terrible", "boring", "worst", "waste", "dull", "poor", "horrible", "stupid", "bad"]
NEUTRAL = [
    "the", "a", "movie", "film", "plot", "actor", "actress", "scene", "story", "director", "camera", "music", "ending",
    "character", "was", "is", "and", "of", "to", "it", "this", "that", "in", "with", "for", "as", "on", "but", "by",
    "at", "from", "they",
]  # fmt: skip
FILLERS = NEUTRAL + [f"w{i}" for i in range(300)]
TEST_COPY_EVERY = 25  # SyntheticDataModule's unlabeled reviews: every 25th repeats a test review
Splits = dict[str, tuple[list[str], list[int]]]


def make_reviews(n: int, seed: int, min_words: int = 20, max_words: int = 120) -> tuple[list[str], list[int]]:
    """`n` reviews with balanced labels; a review's label is the majority polarity of its cue words."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for i in range(n):
        label = i % 2
        words = list(rng.choice(FILLERS, size=int(rng.integers(min_words, max_words + 1))))
        major, minor = (POSITIVE, NEGATIVE) if label else (NEGATIVE, POSITIVE)
        cues = list(rng.choice(major, size=3)) + list(rng.choice(minor, size=int(rng.integers(0, 2))))
        for cue in cues:
            words.insert(int(rng.integers(0, len(words) + 1)), str(cue))
        texts.append(" ".join(words).capitalize() + "." + (" <br /><br />Really!" if rng.random() < 0.3 else ""))
        labels.append(label)
    order = rng.permutation(n)
    return [texts[i] for i in order], [labels[i] for i in order]


def write_parquet_dir(directory: Path, splits: Splits) -> None:
    """Write `{split}-00000-of-00001.parquet` files with the Hub's schema, atomically."""
    for split, (texts, labels) in splits.items():
        table = pa.table({"text": pa.array(texts, pa.string()), "label": pa.array(labels, pa.int64())})
        write_parquet(table, directory / f"{split}-00000-of-00001.parquet")


class GeneratedDataModule(IMDBDataModule):
    """`IMDBDataModule` over generated parquet files, written once per `spec` into the cache
    (`<cache>/<name>-<hash of spec>/`); subclasses generate them from `self.spec` in `make_splits`."""

    def __init__(self, name: str, spec: dict[str, Any], **kwargs):
        key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
        kwargs["path"] = str(Path(kwargs.get("cache_dir") or default_cache_dir()).expanduser() / f"{name}-{key}")
        super().__init__(**kwargs)
        self.spec = spec

    def make_splits(self) -> Splits:
        raise NotImplementedError

    def prepare_data(self) -> None:
        self.generate()
        super().prepare_data()

    def setup(self, stage: str | None = None) -> None:
        self.generate()
        super().setup(stage)

    def generate(self) -> None:
        """Write the files unless they exist (anything that reads `self.path` directly calls this first)."""
        directory = Path(self.path)
        if not (directory / "test-00000-of-00001.parquet").is_file():
            ensure_cache_dir(directory.parent)
            with cache_writes(directory):
                write_parquet_dir(directory, self.make_splits())


class SyntheticDataModule(GeneratedDataModule):
    """`IMDBDataModule` over generated reviews: `n_train`/`n_test` reviews, made once per settings, and
    `n_unlabeled` unlabeled ones (IMDB's `unsupervised` split, for language models), every
    `TEST_COPY_EVERY`-th of them a test review repeated word for word, as IMDB's unlabeled split does."""

    def __init__(self, n_train: int = 2000, n_test: int = 1000, data_seed: int = 0, n_unlabeled: int = 0, **kwargs):
        check_types(SyntheticDataModule.__init__, locals(), "data.")
        spec = {"n_train": n_train, "n_test": n_test, "data_seed": data_seed, "v": 1}
        super().__init__("synthetic", {**spec, "n_unlabeled": n_unlabeled} if n_unlabeled else spec, **kwargs)

    def make_splits(self) -> Splits:
        n_train, n_test, seed = self.spec["n_train"], self.spec["n_test"], self.spec["data_seed"]
        splits = {"train": make_reviews(n_train, seed), "test": make_reviews(n_test, seed + 1)}
        n_unlabeled = self.spec.get("n_unlabeled", 0)
        if n_unlabeled:
            texts = make_reviews(n_unlabeled, seed + 2)[0]
            for i in range(0, n_unlabeled, TEST_COPY_EVERY):
                texts[i] = splits["test"][0][i % n_test]
            splits[UNLABELED] = (texts, [-1] * n_unlabeled)
        return splits
