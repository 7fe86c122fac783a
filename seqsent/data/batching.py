"""Datasets over encoded reviews, padding/truncation, and length-bucketed batching."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from seqsent.data.vocab import PAD_ID
from seqsent.errors import SeqsentError

Batch = dict[str, torch.Tensor]
SIDES = ("pre", "post")


class EncodedReviews(Dataset):
    """Reviews `index` of a flat id array; items are (ids, label)."""

    def __init__(self, ids: np.ndarray, offsets: np.ndarray, labels: np.ndarray, index: np.ndarray | None = None):
        self.ids, self.offsets, self.labels = ids, offsets, labels
        self.index = np.arange(len(labels)) if index is None else np.asarray(index)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[np.ndarray, float]:
        j = self.index[i]  # labels: 0/1, or a teacher's probability for soft-labeled reviews
        return self.ids[self.offsets[j] : self.offsets[j + 1]], self.labels[j].item()

    def lengths(self) -> np.ndarray:
        """Untruncated token counts, in dataset order."""
        return (self.offsets[self.index + 1] - self.offsets[self.index]).astype(np.int64)


def truncate(ids: np.ndarray, max_len: int, side: str) -> np.ndarray:
    """Keep the first (`post`) or the last (`pre`, the seed's choice) `max_len` tokens."""
    return ids[-max_len:] if side == "pre" else ids[:max_len]


def pad(seqs: Sequence[np.ndarray], side: str, length: int | None = None, pad_id: int = PAD_ID) -> torch.Tensor:
    """Stack sequences into a (B, T) int64 tensor, padding in front (`pre`) or behind (`post`)."""
    length = length or max(len(s) for s in seqs)
    out = np.full((len(seqs), length), pad_id, dtype=np.int64)
    for row, seq in enumerate(seqs):
        if side == "pre":
            out[row, length - len(seq) :] = seq
        else:
            out[row, : len(seq)] = seq
    return torch.from_numpy(out)


class Collator:
    """Truncate to `max_len`, pad to the longest review of the batch (or to `max_len` when
    `fixed_length`), and keep the true lengths: {"tokens", "lengths", "labels"}."""

    def __init__(self, max_len: int, padding: str = "pre", truncation: str = "pre", fixed_length: bool = False):
        self.max_len, self.padding, self.truncation, self.fixed_length = max_len, padding, truncation, fixed_length

    def __call__(self, items: list[tuple[np.ndarray, float]]) -> Batch:
        seqs = [truncate(ids, self.max_len, self.truncation) for ids, _ in items]
        length = self.max_len if self.fixed_length else None
        return {
            "tokens": pad(seqs, self.padding, length),
            "lengths": torch.tensor([len(s) for s in seqs], dtype=torch.int64),
            "labels": torch.tensor([label for _, label in items], dtype=torch.float32),
        }


class BucketBatchSampler(Sampler[list[int]]):
    """Seeded batches, by default of reviews of similar length (to cut padding).

    Training: a permutation seeded by (`seed`, epoch), batched; with `bucket` first cut into pools of
    `pool_batches` batches, each sorted by length, and the batches shuffled. Evaluation: sorted by length.

    With `num_replicas > 1` (DDP) every rank builds the same batch list and takes its share, the same
    number on every rank and no example twice: training deals out full batches only (the few left over
    differ each epoch); evaluation uses `exact_shard`, so every example is evaluated exactly once.
    """

    def __init__(
        self,
        lengths: np.ndarray,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        pool_batches: int = 50,
        drop_last: bool = False,
        num_replicas: int = 1,
        rank: int = 0,
        bucket: bool = True,
    ):
        if isinstance(lengths, Sampler):  # Lightning re-creating us around its own sampler (a DistributedSampler)
            raise SeqsentError(
                f"Lightning tried to put a {type(lengths).__name__} into seqsent's batches, which shard themselves "
                "under DDP: use trainer=ddp, or set trainer.use_distributed_sampler=false"
            )
        if batch_size < 1:
            raise SeqsentError(f"batch size {batch_size}: use >= 1")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is not in [0, num_replicas={num_replicas})")
        self.lengths, self.batch_size, self.shuffle, self.seed = np.asarray(lengths), batch_size, shuffle, seed
        self.pool_batches, self.drop_last = pool_batches, drop_last
        self.num_replicas, self.rank, self.epoch = num_replicas, rank, 0
        self.bucket, self._skip = bucket, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @property
    def sampler(self) -> BucketBatchSampler:
        """Itself: Lightning calls `set_epoch` on `dataloader.batch_sampler.sampler`, never on the batch
        sampler; this is how it reaches us, so each epoch gets its own order (not epoch 0's again)."""
        return self

    def _batches(self) -> list[np.ndarray]:
        n = len(self.lengths)
        if not self.shuffle:
            order = np.argsort(self.lengths, kind="stable")
            if self.num_replicas > 1:
                return exact_shard(order, self.batch_size, self.num_replicas, self.rank)
            batches = [order[i : i + self.batch_size] for i in range(0, n, self.batch_size)]
        else:
            rng = np.random.default_rng((self.seed, self.epoch))
            perm = rng.permutation(n)
            pool = self.batch_size * self.pool_batches if self.bucket else n
            batches = []
            for start in range(0, n, pool):
                chunk = perm[start : start + pool]
                if self.bucket:
                    chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
                batches += [chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
            if self.drop_last and batches and len(batches[-1]) < self.batch_size:
                batches = [b for b in batches if len(b) == self.batch_size]
            if self.bucket:
                batches = [batches[i] for i in rng.permutation(len(batches))]
        if self.num_replicas > 1:
            full = [b for b in batches if len(b) == self.batch_size]
            per_rank = len(full) // self.num_replicas
            if per_rank == 0:
                raise SeqsentError(
                    f"{n} examples make fewer than {self.num_replicas} full batches of {self.batch_size}: "
                    "lower the batch size or the number of devices"
                )
            batches = full[: per_rank * self.num_replicas][self.rank :: self.num_replicas]
        return batches

    def skip_batches(self, n: int) -> None:
        """Start the next iteration at batch `n` of this epoch (once)."""
        self._skip = n

    def __iter__(self) -> Iterator[list[int]]:
        skip, self._skip = self._skip, 0
        for batch in self._batches()[skip:]:
            yield batch.tolist()

    def __len__(self) -> int:
        return len(self._batches())


def exact_shard(order: np.ndarray, batch_size: int, num_replicas: int, rank: int) -> list[np.ndarray]:
    """Rank `rank`'s batches of `order`, cut into a multiple of `num_replicas` near-equal batches of
    at most `batch_size` and dealt round robin: every example once, the same batch count on every
    rank (given at least `num_replicas` examples and `batch_size >= 2`)."""
    per_rank = max(1, -(-len(order) // (batch_size * num_replicas)))
    chunks = np.array_split(order, per_rank * num_replicas)
    return [chunk for chunk in chunks[rank::num_replicas] if len(chunk)]
