"""`IMDBDataModule`: tokenized, padded IMDB reviews for Lightning.

dm = IMDBDataModule(path="/path/to/imdb", vocab_size=10_000, max_len=200)  # path: data.path's rule (docs/data.md)
dm.prepare_data(); dm.setup("fit")
batch = next(iter(dm.train_dataloader()))  # {"tokens": (B, T), "lengths": (B,), "labels": (B,)}
"""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch.utils.data import DataLoader

from seqsent.data.batching import SIDES, BucketBatchSampler, Collator, EncodedReviews
from seqsent.data.cache import Prepared, default_cache_dir, prepare, split_indices
from seqsent.data.soft_labels import (
    check_soft_labels_path,
    drop_known,
    read_soft_labels,
    review_keys,
    soft_label_info,
)
from seqsent.data.sources import default_path
from seqsent.data.vocab import PAD_ID, PUNCTUATION, encode, tokenizer_from_json
from seqsent.errors import SeqsentError, check_types

PREP_TIMES: dict[int, float] = {}  # prepare_data may assign no state: its duration waits here


class IMDBDataModule(L.LightningDataModule):
    """IMDB (Hub id, parquet directory or aclImdb tree) as train/val/test DataLoaders.

    The vocabulary is built on the training part only (after the validation split is taken out)
    and cached on disk with the encoded splits. Pass `tokenizer_json` (e.g. from a checkpoint)
    to encode with an existing vocabulary instead. `soft_labels`: a file of unlabeled reviews with
    teacher probabilities (`seqsent.data.soft_labels`), added to the training part only.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        vocab_size: int = 10_000,
        min_frequency: int = 1,
        punctuation: str = "keep",
        max_len: int = 200,
        padding: str = "pre",
        truncation: str = "pre",
        val_fraction: float = 0.2,
        split_seed: int = 42,
        batch_size: int = 32,
        eval_batch_size: int = 256,
        num_workers: int = 0,
        worker_start_method: str | None = None,
        pin_memory: bool | None = None,
        bucket: bool = False,
        fixed_length: bool = False,
        cache_dir: str | Path | None = None,
        tokenizer_json: str | None = None,
        soft_labels: str | Path | None = None,
    ):
        check_types(IMDBDataModule.__init__, locals(), "data.")
        super().__init__()
        _check(vocab_size >= 3, f"data.vocab_size={vocab_size} is too small: use >= 3 (2 specials + words)")
        _check(min_frequency >= 1, f"data.min_frequency={min_frequency}: use >= 1")
        _check(punctuation in PUNCTUATION, f"data.punctuation={punctuation!r}: use 'keep' or 'drop'")
        _check(max_len >= 1, f"data.max_len={max_len}: use a positive number of tokens, e.g. 200")
        _check(padding in SIDES, f"data.padding={padding!r}: use 'pre' or 'post'")
        _check(truncation in SIDES, f"data.truncation={truncation!r}: use 'pre' or 'post'")
        _check(0.0 < val_fraction < 1.0, f"data.val_fraction={val_fraction}: use a fraction between 0 and 1, e.g. 0.2")
        _check(batch_size >= 1, f"data.batch_size={batch_size}: use >= 1")
        _check(eval_batch_size >= 1, f"data.eval_batch_size={eval_batch_size}: use >= 1")
        _check(num_workers >= 0, f"data.num_workers={num_workers}: use >= 0")
        self.path = path or default_path()
        self.vocab_size, self.min_frequency, self.punctuation = vocab_size, min_frequency, punctuation
        self.max_len, self.padding, self.truncation = max_len, padding, truncation
        self.val_fraction, self.split_seed = val_fraction, split_seed
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.num_workers, self.pin_memory, self.bucket = num_workers, pin_memory, bucket
        self.worker_start_method = worker_start_method
        self.fixed_length = fixed_length
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        self.tokenizer_json = tokenizer_json
        if soft_labels:
            check_soft_labels_path(soft_labels)
        self.soft_labels = soft_labels
        self.soft_added = self.soft_dropped = 0
        self.prep_seconds: float | None = None
        self.data: Prepared | None = None

    # -- Lightning hooks -------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Build the vocabulary and the encoded cache on disk (one process; assigns no state)."""
        if self.data is not None:  # set up already (trainer.test after fit): keying on its vocabulary would re-encode
            return
        start = time.perf_counter()
        self._prepare()
        PREP_TIMES[id(self)] = time.perf_counter() - start

    def setup(self, stage: str | None = None) -> None:
        """Load the cached encoding and make the splits (every process)."""
        if self.data is not None:
            return
        start = time.perf_counter()
        self.data = self._prepare()
        self.tokenizer_json = self.data.tokenizer_json
        train = self.data.splits["train"]
        train_idx, val_idx = split_indices(len(train), self.val_fraction, self.split_seed)
        if len(train_idx) == 0 or len(val_idx) == 0:
            raise SeqsentError(
                f"{len(train)} training reviews cannot be split with data.val_fraction={self.val_fraction}: "
                "use more reviews or another fraction"
            )
        classes = np.unique(train.labels[train_idx]).tolist()
        if len(classes) == 1:  # warned once, on rank zero
            rank_zero_warn(
                f"every training review of {self.path} has label {classes[0]}: the model cannot learn to tell the "
                "classes apart; check the data's label column"
            )
        self.train_set = EncodedReviews(train.ids, train.offsets, train.labels, train_idx)
        self.val_set = EncodedReviews(train.ids, train.offsets, train.labels, val_idx)
        test = self.data.splits["test"]
        self.test_set = EncodedReviews(test.ids, test.offsets, test.labels)
        if self.soft_labels:
            self.train_set = self._with_soft_labels(train_idx, val_idx)
        self.prep_seconds = time.perf_counter() - start + PREP_TIMES.pop(id(self), 0.0)

    def _with_soft_labels(self, train_idx: np.ndarray, val_idx: np.ndarray) -> EncodedReviews:
        """The gold training reviews plus the soft-labeled ones (targets: their probabilities),
        less any soft-labeled review whose encoding is a validation or test review's."""
        assert self.data is not None and self.soft_labels is not None
        train, test = self.data.splits["train"], self.data.splits["test"]
        own = {"val_fraction": self.val_fraction, "split_seed": self.split_seed}
        for split in soft_label_info(self.soft_labels).get("teacher_splits") or []:
            if split is not None and split != own:
                raise SeqsentError(
                    f"{self.soft_labels} was made by a teacher that validated on other reviews "
                    f"(val_fraction={split['val_fraction']}, split_seed={split['split_seed']}; this run: "
                    f"{self.val_fraction}, {self.split_seed}): it trained on part of this validation split, so "
                    f"use data.val_fraction={split['val_fraction']} data.split_seed={split['split_seed']}"
                )
        texts, probs = read_soft_labels(self.soft_labels)
        ids, offsets = encode(tokenizer_from_json(self.data.tokenizer_json), texts)
        held_out = review_keys(train.ids, train.offsets, val_idx) | review_keys(test.ids, test.offsets)
        ids, offsets, probs, self.soft_dropped = drop_known(ids, offsets, probs, held_out)
        if len(probs) == 0:
            raise SeqsentError(
                f"every review in {self.soft_labels} is a validation or test review: "
                "soft-label the unlabeled reviews instead (scripts/soft_label.py)"
            )
        self.soft_added = len(probs)
        n = len(train)
        return EncodedReviews(
            np.concatenate([train.ids, ids.astype(train.ids.dtype)]),
            np.concatenate([train.offsets, offsets[1:] + train.offsets[-1]]),
            np.concatenate([train.labels.astype(np.float32), probs]),
            np.concatenate([train_idx, n + np.arange(len(probs))]),
        )

    def _prepare(self) -> Prepared:
        return prepare(
            self.path,
            ("train", "test"),
            self.vocab_size,
            self.min_frequency,
            self.punctuation,
            self.val_fraction,
            self.split_seed,
            self.cache_dir,
            self.tokenizer_json,
        )

    # -- loaders ------------------------------------------------------------------------------
    @property
    def collator(self) -> Collator:
        return Collator(self.max_len, self.padding, self.truncation, self.fixed_length)

    def _loader(self, dataset: EncodedReviews, train: bool) -> DataLoader:
        context = None
        if self.num_workers > 0:
            # explicit "fork" where it exists: also right inside joblib/loky sweep workers, whose
            # default context cannot start DataLoader workers
            fork = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
            context = self.worker_start_method or fork
        # the run's global seed (torch.initial_seed after seed_everything), not the RNG's position:
        # the same order on a resumed run, and on every DDP rank (each runs seed_everything)
        seed = torch.initial_seed() % (2**31)
        # under DDP one shard per process (`batch_size` is per process): the sampler shards itself, so
        # Lightning must not put a DistributedSampler in (`use_distributed_sampler: false`; it refuses one)
        trainer = self.trainer
        replicas, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        sampler = BucketBatchSampler(
            dataset.lengths().clip(max=self.max_len),
            self.batch_size if train else self.eval_batch_size,
            shuffle=train,
            seed=seed,
            bucket=self.bucket or not train,
            num_replicas=replicas,
            rank=rank,
        )
        return DataLoader(
            dataset,
            batch_sampler=sampler,
            collate_fn=self.collator,
            num_workers=self.num_workers,
            pin_memory=torch.cuda.is_available() if self.pin_memory is None else self.pin_memory,
            persistent_workers=self.num_workers > 0,
            multiprocessing_context=context,
            # its own generator: making an iterator draws a worker base seed from it, not from the global
            # torch RNG, so the global stream (dropout masks) does not depend on when Lightning makes the
            # iterators (a run resumed from an epoch's end makes its first one earlier than the original)
            generator=torch.Generator().manual_seed(seed),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, train=False)

    # -- what a checkpoint needs to classify raw text ----------------------------------------
    def preprocessing(self) -> dict:
        """Plain-type description of the text pipeline, saved inside every checkpoint."""
        if self.tokenizer_json is None:
            raise RuntimeError("call setup() before preprocessing()")
        return {
            "tokenizer_json": self.tokenizer_json,
            "max_len": self.max_len,
            "padding": self.padding,
            "truncation": self.truncation,
            "pad_id": PAD_ID,
            "val_fraction": self.val_fraction,  # which training reviews validated: diagnostics on `val` reuse it
            "split_seed": self.split_seed,
        }

    def summary(self) -> str:
        assert self.data is not None
        soft = ""
        if self.soft_labels:
            soft = (
                f" (of which {self.soft_added} soft-labeled from {self.soft_labels}; "
                f"{self.soft_dropped} dropped as val/test reviews)"
            )
        return (
            f"data: {self.path} -> train {len(self.train_set)}{soft}, val {len(self.val_set)}, "
            f"test {len(self.test_set)} reviews; vocab {self.vocab_size}; cache {self.data.directory} "
            f"({'built' if self.data.built else 'loaded'} in {self.prep_seconds:.1f}s)"
        )


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise SeqsentError(message)
