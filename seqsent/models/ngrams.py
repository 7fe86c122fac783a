"""`HashedNgrams`: a vector for the n-gram (the token and the n - 1 before it) ending at each step,
hashed into a table: fastText's n-gram features in their simplest form (docs/models.md).

Reviews are left-aligned, so step 0 holds a review's first token; its n-gram pairs it with the
padding id, a "start" n-gram that does not depend on how much padding the batch has.
"""

from __future__ import annotations

from torch import Tensor, nn

from seqsent.errors import SettingError

MULTIPLIER = 1_000_003  # an odd prime: mixes the first token into all bits of the bucket index


class HashedNgrams(nn.Module):
    """Vectors (T, B, dim) for the n-grams of left-aligned time-major token ids (T, B): the `order`
    tokens ending at each step (`pad_id` before a review's first), hashed into `buckets` rows."""

    def __init__(self, buckets: int, dim: int, pad_id: int = 0, order: int = 2):
        super().__init__()
        if buckets < 1 or dim < 1 or order < 2:
            raise SettingError(f"n-gram buckets={buckets}, dim={dim}, order={order}: use >= 1, >= 1, >= 2 (bigrams)")
        self.buckets, self.pad_id, self.order = buckets, pad_id, order
        self.table = nn.Embedding(buckets, dim)

    def ids(self, tokens: Tensor) -> Tensor:
        """Bucket index (T, B) of the n-gram ending at each step of time-major tokens (T, B)."""
        tokens = tokens.long()  # int64 whatever the input: the product overflows int32
        hashed = None
        for back in range(self.order - 1, -1, -1):  # oldest token first
            shifted = tokens.roll(back, dims=0)
            shifted[:back] = self.pad_id
            hashed = shifted if hashed is None else (hashed * MULTIPLIER + shifted) % self.buckets
        return hashed

    def forward(self, tokens: Tensor) -> Tensor:
        return self.table(self.ids(tokens))

    def extra_repr(self) -> str:
        return f"buckets={self.buckets}, pad_id={self.pad_id}, order={self.order}"
