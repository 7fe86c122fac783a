"""`TextClassificationDataModule`: tokenized, padded texts of any text-classification dataset for Lightning;
`IMDBDataModule`, its IMDB preset.

dm = TextClassificationDataModule(path="my_data/", text_column="sentence", label_column="topic")  # docs/data.md
dm.prepare_data(); dm.setup("fit")
dm.num_classes, dm.label_names  # from the data
batch = next(iter(dm.train_dataloader()))  # {"tokens": (B, T), "lengths": (B,), "labels": (B,) float class ids}
"""

from __future__ import annotations

import inspect
import multiprocessing
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_warn
from tokenizers import Tokenizer
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
from seqsent.data.sources import Source, Split, default_path
from seqsent.data.vocab import (
    DETOKENIZE,
    PAD_ID,
    PUNCTUATION,
    encode,
    tokenizer_from_json,
    train_tokenizer,
    vocabulary_digest,
    with_detokenize,
)
from seqsent.errors import SeqsentError, check_types

PREP_TIMES: dict[int, float] = {}  # prepare_data may assign no state: its duration waits here
# settings that do not change the encoded data (truncation, batching, loading happen per batch; soft labels
# are added in `setup`): every other `__init__` argument is part of the cache key
NOT_IN_CACHE_KEY = (
    "max_len",
    "padding",
    "truncation",
    "batch_size",
    "eval_batch_size",
    "num_workers",
    "worker_start_method",
    "pin_memory",
    "bucket",
    "fixed_length",
    "cache_dir",
    "soft_labels",
)
# settings in the key only when they differ from these values, so entries built before the setting keep their keys
KEYED_WHEN_SET = {"detokenize": "none"}


class CachedDataModule(L.LightningDataModule):
    """A data module whose `_prepare()` builds (or loads) its encoded cache entry, and whose `setup` sets
    `self.data` from it; `prepare_data` builds the entry once and times it."""

    data: Prepared | None = None

    def _prepare(self) -> Prepared:
        raise NotImplementedError

    def prepare_data(self) -> None:
        """Build the vocabulary and the encoded cache on disk (one process; assigns no state)."""
        if self.data is not None:  # set up already (trainer.test after fit): keying on its vocabulary would re-encode
            return
        start = time.perf_counter()
        self._prepare()
        PREP_TIMES[id(self)] = time.perf_counter() - start


class TextClassificationDataModule(CachedDataModule):
    """A text-classification dataset (Hub id, local parquet/CSV/JSON-lines files or aclImdb tree) as
    train/val/test DataLoaders.

    Validation: the `val_split` when the data has one, else a seeded `val_fraction` of the training split.
    The vocabulary is built on the training part only and cached on disk with the encoded splits. Pass
    `tokenizer_json` (e.g. from a checkpoint) to encode with an existing vocabulary instead. After `setup`:
    `num_classes` and `label_names` (a ClassLabel's names, the sorted string labels, or "0".."C-1");
    `num_classes` given here is checked against the data. `soft_labels` (binary data only): a file of
    unlabeled texts with teacher probabilities (`seqsent.data.soft_labels`), added to the training part only.
    """

    imdb_hints = False  # path errors name $SEQSENT_IMDB_DIR (the IMDB preset)

    def __init__(
        self,
        path: str | Path,
        vocab_size: int = 10_000,
        min_frequency: int = 1,
        punctuation: str = "keep",
        detokenize: str = "none",
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
        text_column: str = "text",
        label_column: str = "label",
        train_split: str = "train",
        val_split: str | None = "validation",
        test_split: str = "test",
        hub_config: str | None = None,
        num_classes: int | None = None,
    ):
        self.arguments = _arguments(locals())
        check_types(TextClassificationDataModule.__init__, self.arguments, "data.")
        super().__init__()
        _check(vocab_size >= 3, f"data.vocab_size={vocab_size} is too small: use >= 3 (2 specials + words)")
        _check(min_frequency >= 1, f"data.min_frequency={min_frequency}: use >= 1")
        _check(punctuation in PUNCTUATION, f"data.punctuation={punctuation!r}: use 'keep' or 'drop'")
        _check(detokenize in DETOKENIZE, f"data.detokenize={detokenize!r}: use 'none' or 'ptb' (Penn-Treebank text)")
        _check(max_len >= 1, f"data.max_len={max_len}: use a positive number of tokens, e.g. 200")
        _check(padding in SIDES, f"data.padding={padding!r}: use 'pre' or 'post'")
        _check(truncation in SIDES, f"data.truncation={truncation!r}: use 'pre' or 'post'")
        _check(0.0 < val_fraction < 1.0, f"data.val_fraction={val_fraction}: use a fraction between 0 and 1, e.g. 0.2")
        _check(batch_size >= 1, f"data.batch_size={batch_size}: use >= 1")
        _check(eval_batch_size >= 1, f"data.eval_batch_size={eval_batch_size}: use >= 1")
        _check(num_workers >= 0, f"data.num_workers={num_workers}: use >= 0")
        _check(bool(text_column and label_column), "data.text_column and data.label_column: name the data's columns")
        _check(text_column != label_column, f"data.text_column and data.label_column are both {text_column!r}")
        _check(
            train_split != test_split and val_split not in (train_split, test_split),
            f"data.train_split={train_split!r}, data.val_split={val_split!r}, data.test_split={test_split!r}: "
            "name three different splits (data.val_split=null: a data.val_fraction of the training split)",
        )
        _check(num_classes is None or num_classes >= 2, f"data.num_classes={num_classes}: use >= 2, or null")
        _check(
            not (soft_labels and num_classes not in (None, 2)),
            f"data.soft_labels with data.num_classes={num_classes}: soft labels are for two classes only",
        )
        self.path = path
        self.vocab_size, self.min_frequency, self.punctuation = vocab_size, min_frequency, punctuation
        self.detokenize = detokenize
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
        self.train_split, self.val_split, self.test_split = train_split, val_split, test_split
        splits = (("train", train_split), ("val", val_split), ("test", test_split))
        self.source = Source(
            str(path),
            text_column,
            label_column,
            hub_config,
            num_classes,
            imdb_hints=self.imdb_hints,
            split_options=tuple((split, f"data.{role}_split") for role, split in splits if split is not None),
        )
        self.num_classes: int | None = num_classes  # the data's count after setup
        self.label_names: list[str] | None = None
        self.soft_added = self.soft_dropped = 0
        self.prep_seconds: float | None = None
        self.data: Prepared | None = None

    def cache_settings(self) -> dict[str, Any]:
        """The settings the cache key holds: every `__init__` argument but those in `NOT_IN_CACHE_KEY` and those
        at their `KEYED_WHEN_SET` value (a given vocabulary as its hash: the entry's meta.json keeps them)."""
        settings = {
            name: value
            for name, value in self.arguments.items()
            if name not in NOT_IN_CACHE_KEY and KEYED_WHEN_SET.get(name, ...) != value
        }
        if settings["tokenizer_json"] is not None:
            settings["tokenizer_json"] = vocabulary_digest(settings["tokenizer_json"])
        return settings

    # -- Lightning hooks (prepare_data: CachedDataModule's) --------------------------------------
    def setup(self, stage: str | None = None) -> None:
        """Load the cached encoding and make the splits (every process)."""
        if self.data is not None:
            return
        start = time.perf_counter()
        self.data = self._prepare()
        self.tokenizer_json = self.data.tokenizer_json
        self.label_names = self.data.label_names
        self.num_classes = len(self.label_names)
        train = self.data.splits[self.train_split]
        if self.val_split in self.data.splits:
            train_idx, val = np.arange(len(train)), self.data.splits[self.val_split]
            self.val_set = EncodedReviews(val.ids, val.offsets, val.labels)
        else:
            train_idx, val_idx = split_indices(len(train), self.val_fraction, self.split_seed)
            if len(train_idx) == 0 or len(val_idx) == 0:
                raise SeqsentError(
                    f"{len(train)} training texts cannot be split with data.val_fraction={self.val_fraction}: "
                    "use more texts or another fraction"
                )
            self.val_set = EncodedReviews(train.ids, train.offsets, train.labels, val_idx)
        self._warn_missing_classes(train.labels[train_idx])
        self.train_set = EncodedReviews(train.ids, train.offsets, train.labels, train_idx)
        test = self.data.splits[self.test_split]
        self.test_set = EncodedReviews(test.ids, test.offsets, test.labels)
        if self.soft_labels:
            self.train_set = self._with_soft_labels()
        self.prep_seconds = time.perf_counter() - start + PREP_TIMES.pop(id(self), 0.0)

    def _warn_missing_classes(self, labels: np.ndarray) -> None:
        """Warn (once, on rank zero) when the training part lacks a class: the model cannot learn it."""
        assert self.label_names is not None
        present = np.unique(labels).tolist()
        if len(present) == 1:
            rank_zero_warn(
                f"every training review of {self.path} has label {present[0]}: the model cannot learn to tell the "
                "classes apart; check the data's label column"
            )
        elif len(present) < len(self.label_names):
            missing = [name for i, name in enumerate(self.label_names) if i not in present]
            rank_zero_warn(
                f"no training text of {self.path} has the class {', '.join(missing)}: the model cannot learn it; "
                "check the data's label column"
            )

    def _with_soft_labels(self) -> EncodedReviews:
        """The gold training texts plus the soft-labeled ones (targets: their probabilities), less any
        soft-labeled text whose encoding is a validation or test text's."""
        assert self.data is not None and self.soft_labels is not None
        if self.num_classes != 2:
            raise SeqsentError(
                f"data.soft_labels: {self.path} has {self.num_classes} classes, and soft labels (one probability "
                "per text) are for two: leave data.soft_labels unset"
            )
        own = {"val_fraction": self.val_fraction, "split_seed": self.split_seed}
        fraction = self.val_split not in self.data.splits  # validation from val_fraction: teachers must share it
        for split in soft_label_info(self.soft_labels).get("teacher_splits") or []:
            if fraction and split is not None and split != own:
                raise SeqsentError(
                    f"{self.soft_labels} was made by a teacher that validated on other reviews "
                    f"(val_fraction={split['val_fraction']}, split_seed={split['split_seed']}; this run: "
                    f"{self.val_fraction}, {self.split_seed}): it trained on part of this validation split, so "
                    f"use data.val_fraction={split['val_fraction']} data.split_seed={split['split_seed']}"
                )
        texts, probs = read_soft_labels(self.soft_labels)
        ids, offsets = encode(tokenizer_from_json(self.data.tokenizer_json), texts)
        held_out = set().union(*(review_keys(s.ids, s.offsets, s.index) for s in (self.val_set, self.test_set)))
        ids, offsets, probs, self.soft_dropped = drop_known(ids, offsets, probs, held_out)
        if len(probs) == 0:
            raise SeqsentError(
                f"every review in {self.soft_labels} is a validation or test review: "
                "soft-label the unlabeled reviews instead (scripts/soft_label.py)"
            )
        self.soft_added = len(probs)
        gold = self.train_set
        n = len(gold.labels)
        return EncodedReviews(
            np.concatenate([gold.ids, ids.astype(gold.ids.dtype)]),
            np.concatenate([gold.offsets, offsets[1:] + gold.offsets[-1]]),
            np.concatenate([gold.labels.astype(np.float32), probs]),
            np.concatenate([gold.index, n + np.arange(len(probs))]),
        )

    def _prepare(self) -> Prepared:
        required = (self.train_split, self.test_split)
        optional = (self.val_split,) if self.val_split is not None else ()
        return prepare(self.source, required, self.cache_settings(), self.cache_dir, self._tokenizer, optional)

    def _tokenizer(self, raw: dict[str, Split]) -> Tokenizer:
        """The vocabulary: `tokenizer_json`'s, else built on the training part (the training split less
        the validation fraction, when the data has no validation split)."""
        if self.tokenizer_json is not None:
            return with_detokenize(tokenizer_from_json(self.tokenizer_json), self.detokenize)
        texts = raw[self.train_split].texts
        if self.val_split not in raw:
            train_idx, _ = split_indices(len(texts), self.val_fraction, self.split_seed)
            texts = [texts[i] for i in train_idx]
        return train_tokenizer(texts, self.vocab_size, self.min_frequency, self.punctuation, detokenize=self.detokenize)

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
        if self.tokenizer_json is None or self.label_names is None:
            raise RuntimeError("call setup() before preprocessing()")
        return {
            "tokenizer_json": self.tokenizer_json,
            "max_len": self.max_len,
            "padding": self.padding,
            "truncation": self.truncation,
            "pad_id": PAD_ID,
            "val_fraction": self.val_fraction,  # which training reviews validated: diagnostics on `val` reuse it
            "split_seed": self.split_seed,
            "label_names": list(self.label_names),  # class i's name; predict prints them
        }

    def summary(self) -> str:
        assert self.data is not None
        soft = ""
        if self.soft_labels:
            soft = (
                f" (of which {self.soft_added} soft-labeled from {self.soft_labels}; "
                f"{self.soft_dropped} dropped as val/test reviews)"
            )
        val = self.val_split if self.val_split in self.data.splits else f"{self.val_fraction} of {self.train_split}"
        return (
            f"data: {self.path} -> train {len(self.train_set)}{soft}, val {len(self.val_set)} ({val}), "
            f"test {len(self.test_set)} texts; {self.num_classes} classes; vocab {self.vocab_size}; "
            f"cache {self.data.directory} ({'built' if self.data.built else 'loaded'} in {self.prep_seconds:.1f}s)"
        )


class IMDBDataModule(TextClassificationDataModule):
    """IMDB's preset: `path` defaults to `$SEQSENT_IMDB_DIR`, `$SEQSENT_DATA_DIR/imdb` or the Hub's
    stanfordnlp/imdb (`default_path`); two classes unless `num_classes` says otherwise (None: the data's);
    path errors name `$SEQSENT_IMDB_DIR`. Every other setting is `TextClassificationDataModule`'s."""

    imdb_hints = True

    def __init__(self, path: str | Path | None = None, num_classes: int | None = 2, **kwargs: Any):
        check_types(IMDBDataModule.__init__, {"path": path, "num_classes": num_classes}, "data.")
        super().__init__(path=path or default_path(), num_classes=num_classes, **kwargs)


def _arguments(values: dict[str, Any]) -> dict[str, Any]:
    """`TextClassificationDataModule.__init__`'s arguments among `values` (its `locals()`), by its signature."""
    params = inspect.signature(TextClassificationDataModule.__init__).parameters
    return {name: values[name] for name in params if name != "self"}


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise SeqsentError(message)
