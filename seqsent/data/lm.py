"""`LanguageModelDataModule`: a classification dataset's training text and unlabeled text as one token stream
for a language model (`python -m seqsent.pretrain`).

lm = LanguageModelDataModule(IMDBDataModule(), batch_size=64, bptt=70)
lm.prepare_data(); lm.setup("fit")
batch = next(iter(lm.train_dataloader()))  # {"inputs": (B, T), "targets": (B, T)}; row b continues in the next batch

The text: the classifier's training part (its training split less its validation fraction, or all of it when
the data has a validation split) and the unlabeled split, less every document whose encoding is one of the
classifier's validation or test reviews; a seeded (`data.split_seed`) `heldout_fraction` of those documents is
held out for perplexity. The vocabulary (`<pad>`, `<unk>`, `<eos>` = 2, then the words) is built on the
training documents. Every epoch shuffles the documents (seeded by `seed` and the epoch), ends each with `<eos>`
(a backward model reads each document reversed, then `<eos>`), cuts the stream into `batch_size` rows and reads
them in consecutive windows: AWD-LSTM's variable lengths (`bptt` with probability 0.95, else `bptt / 2`, then
normal with sd 5, at least 5), stretched by one common factor near 1 so every epoch has the same number of
batches. The windows depend only on `seed` and the epoch, and `skip_batches` resumes mid-epoch
(`seqsent.reliability.ExactResume`). One process only: the rows are not sharded across devices.
"""

from __future__ import annotations

import copy
import inspect
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tokenizers import Tokenizer
from torch.utils.data import DataLoader, Dataset, Sampler

from seqsent.data.batching import Batch
from seqsent.data.cache import EncodedSplit, Prepared, prepare, split_indices
from seqsent.data.datamodule import PREP_TIMES, CachedDataModule, TextClassificationDataModule
from seqsent.data.soft_labels import drop_known, review_keys
from seqsent.data.sources import UNLABELED, Split
from seqsent.data.synthetic import GeneratedDataModule
from seqsent.data.vocab import (
    EOS,
    EOS_ID,
    PAD,
    UNK,
    UNK_ID,
    tokenizer_from_json,
    train_tokenizer,
    vocabulary_digest,
    with_detokenize,
)
from seqsent.errors import SeqsentError, check_types

LM_DATA_VERSION = "lm-v1"  # in the cache key: LM entries never collide with a classifier's
DIRECTIONS = ("forward", "backward")
LONG_WINDOW_P, WINDOW_SD, MIN_WINDOW = 0.95, 5.0, 5  # AWD-LSTM's variable window lengths
MEAN_WINDOW = LONG_WINDOW_P + (1 - LONG_WINDOW_P) / 2  # their mean, as a fraction of bptt
# classifier settings the LM's encoding does not depend on (its own vocabulary replaces the classifier's)
NOT_LM_KEY = ("vocab_size", "min_frequency", "tokenizer_json")


@dataclass
class Documents:
    """Encoded documents as a flat int32 id array and int64 offsets (`ids[offsets[i]:offsets[i+1]]`)."""

    ids: np.ndarray
    offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def take(self, rows: np.ndarray) -> Documents:
        """Documents `rows`, in that order."""
        lengths = self.lengths[rows]
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        source = np.repeat(self.offsets[rows] - offsets[:-1], lengths) + np.arange(offsets[-1])
        return Documents(self.ids[source], offsets)

    def stream(self, order: np.ndarray, backward: bool, limit: int | None = None) -> np.ndarray:
        """Documents `order` each followed by `<eos>` (its tokens reversed when `backward`), as one array of at
        most `limit` tokens."""
        step, eos = (-1 if backward else 1), np.array([EOS_ID], dtype=self.ids.dtype)
        parts, total = [], 0
        for row in order:
            start, stop = self.offsets[row], self.offsets[row + 1]
            parts += (self.ids[start:stop][::step], eos)
            total += stop - start + 1
            if limit is not None and total >= limit:
                break
        return np.concatenate(parts)[:limit]


def window_count(positions: int, bptt: int, vary: bool) -> int:
    """How many windows tile `positions` input positions (the same for every epoch)."""
    return max(1, round(positions / (MEAN_WINDOW * bptt))) if vary else math.ceil(positions / bptt)


def window_bounds(positions: int, bptt: int, rng: np.random.Generator | None) -> np.ndarray:
    """Window boundaries 0 = b_0 < ... < b_K = `positions`: windows of `bptt` (the last one shorter) without
    `rng`; with it AWD-LSTM's variable lengths, stretched by one common factor to tile `positions` exactly."""
    if rng is None:
        return np.append(np.arange(0, positions, bptt), positions)
    count = window_count(positions, bptt, vary=True)
    base = np.where(rng.random(count) < LONG_WINDOW_P, bptt, bptt / 2)
    lengths = np.maximum(MIN_WINDOW, rng.normal(base, WINDOW_SD).astype(np.int64))
    ends = np.cumsum(lengths)
    bounds = np.concatenate([[0], np.round(ends * (positions / ends[-1])).astype(np.int64)])
    bounds[-1] = positions
    return bounds


class StreamWindows(Dataset):
    """Windows of an epoch's stream, cut into rows: item `(epoch, start, stop)` is the batch
    `{"inputs": rows[:, start:stop], "targets": rows[:, start + 1:stop + 1]}` (int64)."""

    def __init__(self, make_rows: Callable[[int], np.ndarray]):
        self.make_rows = make_rows
        self._rows: tuple[int, np.ndarray] | None = None  # the last epoch's rows

    def rows(self, epoch: int) -> np.ndarray:
        """The stream of `epoch` as (rows, tokens per row)."""
        if self._rows is None or self._rows[0] != epoch:
            self._rows = (epoch, self.make_rows(epoch))
        return self._rows[1]

    def __getitem__(self, window: tuple[int, int, int]) -> Batch:
        epoch, start, stop = window
        rows = self.rows(epoch)
        return {
            "inputs": torch.from_numpy(rows[:, start:stop].astype(np.int64)),
            "targets": torch.from_numpy(rows[:, start + 1 : stop + 1].astype(np.int64)),
        }


class WindowSampler(Sampler[list[tuple[int, int, int]]]):
    """One batch per window of the epoch: `[(epoch, start, stop)]`, windows seeded by (`seed`, epoch) when
    `vary`. `set_epoch` and `skip_batches` as `BucketBatchSampler`'s (Lightning and `ExactResume` call them)."""

    def __init__(self, positions: int, bptt: int, vary: bool, seed: int = 0):
        self.positions, self.bptt, self.vary, self.seed = positions, bptt, vary, seed
        self.epoch, self._skip = 0, 0

    @property
    def sampler(self) -> WindowSampler:
        """Itself: Lightning calls `set_epoch` on `dataloader.batch_sampler.sampler`."""
        return self

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def skip_batches(self, n: int) -> None:
        """Start the next iteration at batch `n` of this epoch (once)."""
        self._skip = n

    def bounds(self) -> np.ndarray:
        rng = np.random.default_rng((self.seed, self.epoch, 1)) if self.vary else None
        return window_bounds(self.positions, self.bptt, rng)

    def __iter__(self) -> Iterator[list[tuple[int, int, int]]]:
        skip, self._skip = self._skip, 0
        bounds = self.bounds().tolist()
        for start, stop in zip(bounds[skip:-1], bounds[skip + 1 :]):
            yield [(self.epoch, start, stop)]

    def __len__(self) -> int:
        return window_count(self.positions, self.bptt, self.vary)


def _only(items: list[Batch]) -> Batch:
    return items[0]


class LanguageModelDataModule(CachedDataModule):
    """A language model's train and held-out token streams from the `classifier` data module's dataset (its
    source, splits and validation split; not set up). See the module docstring for the text and the batches.

    `unlabeled_split`: its unlabeled split, used when the data has it (another name than the default must
    exist). `max_tokens`: read at most this many tokens of each epoch's stream (a different sample of the
    documents every epoch), and the held-out stream in proportion. `classifier.tokenizer_json`, when set,
    is the vocabulary (a language model's, with `<eos>` = 2). After `setup`: `tokenizer_json`, `documents`
    ({"train", "heldout"}), `stats`, `summary()`, `preprocessing()`.
    """

    def __init__(
        self,
        classifier: TextClassificationDataModule,
        unlabeled_split: str | None = UNLABELED,
        vocab_size: int = 30_000,
        min_frequency: int = 2,
        heldout_fraction: float = 0.02,
        batch_size: int = 64,
        bptt: int = 70,
        vary_bptt: bool = True,
        direction: str = "forward",
        max_tokens: int | None = None,
        seed: int = 0,
        cache_dir: str | Path | None = None,
    ):
        values = locals()
        params = inspect.signature(LanguageModelDataModule.__init__).parameters
        check_types(LanguageModelDataModule.__init__, {n: values[n] for n in params if n != "self"}, "lm_data.")
        super().__init__()
        _check(vocab_size >= 4, f"lm_data.vocab_size={vocab_size} is too small: use >= 4 (3 specials + words)")
        _check(min_frequency >= 1, f"lm_data.min_frequency={min_frequency}: use >= 1")
        _check(
            0.0 < heldout_fraction < 0.5,
            f"lm_data.heldout_fraction={heldout_fraction}: use a fraction between 0 and 0.5, e.g. 0.02",
        )
        _check(batch_size >= 1, f"lm_data.batch_size={batch_size}: use >= 1")
        _check(bptt >= 2, f"lm_data.bptt={bptt}: use a window of >= 2 tokens, e.g. 70")
        _check(direction in DIRECTIONS, f"lm_data.direction={direction!r}: use 'forward' or 'backward'")
        _check(max_tokens is None or max_tokens >= 1, f"lm_data.max_tokens={max_tokens}: use a positive number or null")
        splits = (classifier.train_split, classifier.val_split, classifier.test_split)
        _check(
            unlabeled_split not in splits,
            f"lm_data.unlabeled_split={unlabeled_split!r} is one of the classifier's splits "
            f"{[s for s in splits if s]}: name the unlabeled split, or null for none",
        )
        self.classifier = classifier
        self.unlabeled_split, self.vocab_size, self.min_frequency = unlabeled_split, vocab_size, min_frequency
        self.heldout_fraction, self.batch_size = heldout_fraction, batch_size
        self.bptt, self.vary_bptt = bptt, vary_bptt
        self.direction, self.max_tokens, self.seed = direction, max_tokens, seed
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else classifier.cache_dir
        self.tokenizer_json: str | None = classifier.tokenizer_json
        if self.tokenizer_json is not None:
            _check_lm_vocabulary(self.tokenizer_json)
        self.label_names: list[str] | None = None
        self.documents: dict[str, Documents] = {}
        self.stats: dict[str, Any] = {}
        self.data: Prepared | None = None
        self.prep_seconds: float | None = None

    def cache_settings(self) -> dict[str, Any]:
        """The cache key's settings: the classifier's data and split settings and the LM's vocabulary settings."""
        given = self.tokenizer_json and vocabulary_digest(self.tokenizer_json)
        return {
            "kind": LM_DATA_VERSION,
            "classifier": {k: v for k, v in self.classifier.cache_settings().items() if k not in NOT_LM_KEY},
            "unlabeled_split": self.unlabeled_split,
            "vocab_size": self.vocab_size,
            "min_frequency": self.min_frequency,
            "heldout_fraction": self.heldout_fraction,
            "tokenizer_json": given,
        }

    # -- Lightning hooks (prepare_data: CachedDataModule's) --------------------------------------
    def setup(self, stage: str | None = None) -> None:
        """Load the cached encoding, drop the classifier's validation and test reviews, hold out documents."""
        if self.data is not None:
            return
        start = time.perf_counter()
        data = self._prepare()
        self._check_unlabeled(data.splits)
        self.tokenizer_json, self.label_names = data.tokenizer_json, data.label_names
        train_idx, known = self._classifier_parts(data)
        unlabeled = data.splits.get(self.unlabeled_split) if self.unlabeled_split else None
        candidates = _candidates(data.splits[self.classifier.train_split], train_idx, unlabeled)
        keep, heldout = split_indices(len(candidates), self.heldout_fraction, self.classifier.split_seed)
        dropped = 0
        for name, rows in (("train", keep), ("heldout", heldout)):
            docs = candidates.take(rows)
            ids, offsets, _, count = drop_known(docs.ids, docs.offsets, np.zeros(len(docs)), known)
            self.documents[name], dropped = Documents(ids, offsets), dropped + count
        self.data = data
        self._set_stats(len(train_idx), len(unlabeled) if unlabeled is not None else 0, dropped)
        self.prep_seconds = time.perf_counter() - start + PREP_TIMES.pop(id(self), 0.0)

    def _prepare(self) -> Prepared:
        if isinstance(self.classifier, GeneratedDataModule):
            self.classifier.generate()
        c = self.classifier
        required, optional = (c.train_split, c.test_split), tuple(s for s in (c.val_split, self.unlabeled_split) if s)
        return prepare(c.source, required, self.cache_settings(), self.cache_dir, self._tokenizer, optional)

    def _check_unlabeled(self, splits: dict[str, Any]) -> None:
        """The default unlabeled split may be missing; one named otherwise must be in `splits`."""
        if self.unlabeled_split not in (UNLABELED, None) and self.unlabeled_split not in splits:
            raise SeqsentError(
                f"{self.classifier.path} has no {self.unlabeled_split!r} split (lm_data.unlabeled_split): name a "
                "split it has, or null to use the training text only"
            )

    def _training_rows(self, n_train: int, has_val: bool) -> tuple[np.ndarray, np.ndarray]:
        """(the training split's rows in the classifier's training part, those in its validation part)."""
        if has_val:
            return np.arange(n_train), np.arange(0)
        return split_indices(n_train, self.classifier.val_fraction, self.classifier.split_seed)

    def _classifier_parts(self, data: Prepared) -> tuple[np.ndarray, set[bytes]]:
        """The rows of the classifier's training part, and the keys of its validation and test reviews."""
        c = self.classifier
        train, test = data.splits[c.train_split], data.splits[c.test_split]
        has_val = c.val_split in data.splits
        train_idx, val_idx = self._training_rows(len(train), has_val)
        known = review_keys(test.ids, test.offsets)
        if has_val:
            val = data.splits[c.val_split]
            return train_idx, known | review_keys(val.ids, val.offsets)
        return train_idx, known | review_keys(train.ids, train.offsets, val_idx)

    def _tokenizer(self, raw: dict[str, Split]) -> Tokenizer:
        """The vocabulary (only when the cache entry is built): the given one, else built on the training
        documents less any text of the classifier's validation or test part."""
        c = self.classifier
        if self.tokenizer_json is not None:
            return with_detokenize(tokenizer_from_json(self.tokenizer_json), c.detokenize)
        self._check_unlabeled(raw)
        train = raw[c.train_split].texts
        train_idx, val_idx = self._training_rows(len(train), c.val_split in raw)
        val = raw[c.val_split].texts if c.val_split in raw else [train[i] for i in val_idx]
        held = {*raw[c.test_split].texts, *val}
        texts = [train[i] for i in train_idx] + (raw[self.unlabeled_split].texts if self.unlabeled_split in raw else [])
        keep, _ = split_indices(len(texts), self.heldout_fraction, c.split_seed)
        texts = [texts[i] for i in keep if texts[i] not in held]
        start = time.perf_counter()
        print(f"lm data: building a {self.vocab_size}-token vocabulary on {len(texts)} documents...", flush=True)
        tok = train_tokenizer(texts, self.vocab_size, self.min_frequency, c.punctuation, (PAD, UNK, EOS), c.detokenize)
        total = sum(len(split.texts) for split in raw.values())
        print(
            f"lm data: vocabulary built in {time.perf_counter() - start:.0f}s; encoding {total} texts "
            f"({', '.join(raw)}) into {self.cache_dir} (later runs load them)...",
            flush=True,
        )
        return tok

    def _set_stats(self, n_train: int, n_unlabeled: int, dropped: int) -> None:
        train, heldout = self.documents["train"], self.documents["heldout"]
        if len(train) == 0 or len(heldout) == 0:
            raise SeqsentError(
                f"{len(train) + len(heldout)} documents leave {len(heldout)} held out with "
                f"lm_data.heldout_fraction={self.heldout_fraction}: use more text or another fraction"
            )
        tokens = {name: int(docs.offsets[-1] + len(docs)) for name, docs in self.documents.items()}  # with <eos>
        self.stats = {
            "documents": len(train),
            "heldout_documents": len(heldout),
            "classifier_train_documents": n_train,
            "unlabeled_documents": n_unlabeled,
            "duplicates_dropped": dropped,
            "tokens": tokens["train"],
            "heldout_tokens": tokens["heldout"],
            "stream_tokens": self._stream_tokens("train"),
            "heldout_stream_tokens": self._stream_tokens("heldout"),
            "vocab_size": tokenizer_from_json(self.tokenizer_json).get_vocab_size(),
            "unk_share": float(np.mean(train.ids == UNK_ID)),
            "heldout_unk_share": float(np.mean(heldout.ids == UNK_ID)),
        }
        rows, per_row = self._shape("train")
        if per_row - 1 < self.bptt:
            cap = " (lm_data.max_tokens caps it)" if self.max_tokens is not None else ""
            raise SeqsentError(
                f"lm_data.batch_size={self.batch_size} rows of lm_data.bptt={self.bptt} tokens need a stream of at "
                f"least {rows * (self.bptt + 1)} tokens, and it holds {self.stats['stream_tokens']}{cap}: lower "
                "lm_data.batch_size or lm_data.bptt, or use more text"
            )

    # -- streams and loaders ----------------------------------------------------------------
    def _stream_tokens(self, name: str) -> int:
        """Tokens (with `<eos>`) of each epoch's `name` stream: all of them, or `max_tokens` (held out: in
        proportion)."""
        docs = self.documents[name]
        total = int(docs.offsets[-1] + len(docs))
        if self.max_tokens is None:
            return total
        f = self.heldout_fraction
        heldout = max(self.bptt + 1, math.ceil(self.max_tokens * f / (1 - f)))  # at least one window
        return min(total, self.max_tokens if name == "train" else heldout)

    def _shape(self, name: str) -> tuple[int, int]:
        """(rows, tokens per row) of the `name` stream: `batch_size` rows for training; for the held-out
        stream as many (up to `batch_size`) as leave each row one full window."""
        tokens = self._stream_tokens(name)
        rows = self.batch_size if name == "train" else min(self.batch_size, max(1, (tokens - 1) // self.bptt))
        return rows, tokens // rows

    def _rows(self, name: str, epoch: int) -> np.ndarray:
        """The `name` stream of `epoch` as (rows, tokens per row): documents shuffled by (`seed`, epoch) for
        training, in order for the held-out stream."""
        docs = self.documents[name]
        order = np.arange(len(docs))
        if name == "train":
            order = np.random.default_rng((self.seed, epoch, 0)).permutation(order)
        rows, per_row = self._shape(name)
        stream = docs.stream(order, backward=self.direction == "backward", limit=rows * per_row)
        return stream.reshape(rows, per_row)

    def _loader(self, name: str) -> DataLoader:
        if self.trainer is not None and self.trainer.world_size > 1:
            raise SeqsentError("the language model's data is one stream on one device: use trainer.devices=1 (no DDP)")
        train = name == "train"
        _, per_row = self._shape(name)
        seed = self.seed if train else 0
        windows = WindowSampler(per_row - 1, self.bptt, vary=self.vary_bptt and train, seed=seed)
        return DataLoader(
            StreamWindows(lambda epoch: self._rows(name, epoch)),
            batch_sampler=windows,
            collate_fn=_only,
            pin_memory=torch.cuda.is_available(),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("heldout")

    # -- what a checkpoint needs ------------------------------------------------------------
    def preprocessing(self) -> dict:
        """The classifier's `preprocessing()` keys with the LM's vocabulary, plus `direction`, `punctuation`
        and `eos_id` (saved inside LM checkpoints)."""
        if self.tokenizer_json is None or self.label_names is None:
            raise RuntimeError("call setup() before preprocessing()")
        view = copy.copy(self.classifier)  # its settings with the LM's vocabulary; the classifier is untouched
        view.tokenizer_json, view.label_names = self.tokenizer_json, self.label_names
        return {
            **view.preprocessing(),
            "direction": self.direction,
            "punctuation": self.classifier.punctuation,
            "eos_id": EOS_ID,
        }

    def summary(self) -> str:
        assert self.data is not None
        s = self.stats
        capped = f" (lm_data.max_tokens of {s['tokens']})" if s["stream_tokens"] < s["tokens"] else ""
        unlabeled = f" + {s['unlabeled_documents']} {self.unlabeled_split}" if s["unlabeled_documents"] else ""
        return (
            f"lm data: {self.classifier.path} ({self.direction}) -> {s['documents']} documents "
            f"({s['classifier_train_documents']} of the classifier's training part{unlabeled}, "
            f"{s['duplicates_dropped']} dropped as its validation/test reviews), {s['stream_tokens']} tokens per "
            f"epoch{capped}; held out {s['heldout_documents']} documents, {s['heldout_stream_tokens']} tokens; "
            f"vocab {s['vocab_size']} (<unk> {s['unk_share']:.2%} of tokens); {len(self.train_dataloader())} "
            f"batches of {self.batch_size} x ~{self.bptt}; cache {self.data.directory} "
            f"({'built' if self.data.built else 'loaded'} in {self.prep_seconds:.1f}s)"
        )


def _candidates(train: EncodedSplit, train_idx: np.ndarray, unlabeled: EncodedSplit | None) -> Documents:
    """The classifier's training part (`train_idx` of `train`), then the unlabeled split: the LM's documents
    before the held-out split and the dropping of validation and test reviews."""
    docs = Documents(train.ids, train.offsets).take(train_idx)
    if unlabeled is None:
        return docs
    offsets = np.concatenate([docs.offsets, unlabeled.offsets[1:] + docs.offsets[-1]])
    return Documents(np.concatenate([docs.ids, unlabeled.ids.astype(docs.ids.dtype)]), offsets)


def _check_lm_vocabulary(tokenizer_json: str) -> None:
    """A given vocabulary must be a language model's: `<eos>` at id 2."""
    if tokenizer_from_json(tokenizer_json).token_to_id(EOS) != EOS_ID:
        raise SeqsentError(
            f"data.tokenizer_json has no {EOS} at id {EOS_ID} (a classifier's vocabulary?): a language model "
            "needs its own; leave data.tokenizer_json unset to build one"
        )


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise SeqsentError(message)
