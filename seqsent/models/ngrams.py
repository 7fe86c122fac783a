"""`HashedBigrams` (and `HashedNgrams`): an embedding of each token's bigram (the token and the one
before it), or longer n-gram, hashed.

fastText's n-gram features and Johnson & Zhang's region embeddings in their simplest form: the
bigram ending at step t, (token[t-1], token[t]), is hashed into one of `buckets` rows of a table,
and its vector is concatenated to the word embedding at step t. The recurrent encoder then reads
short phrases ("not good", "no plot") as units instead of composing them from single words.

Reviews are left-aligned (`seqsent.models.encoders.left_align`), so step 0 always holds a review's
first kept token; its bigram pairs it with the padding id, a "start" bigram that does not depend on
how much padding the batch has. Bigrams at padding steps get vectors too, which the encoder never
reads into a review's summary.
"""

from __future__ import annotations

from torch import Tensor, nn

from seqsent.errors import SettingError

MULTIPLIER = 1_000_003  # an odd prime: mixes the first token into all bits of the bucket index


class HashedNgrams(nn.Module):
    """Vectors (T, B, dim) for the n-grams of left-aligned time-major token ids (T, B): the `order`
    tokens ending at each step, hashed.

    Args:
        buckets: rows of the hashed table (distinct n-grams sharing a row share its vector).
        dim: size of each n-gram vector.
        pad_id: the padding id, standing for the tokens before a review's first.
        order: n (2: bigrams, 3: trigrams).
    """

    def __init__(self, buckets: int, dim: int, pad_id: int = 0, order: int = 2):
        super().__init__()
        if buckets < 1 or dim < 1:
            raise SettingError(f"n-gram buckets={buckets}, dim={dim}: use >= 1 each")
        if order < 2:
            raise SettingError(f"n-gram order={order}: use 2 (bigrams) or more")
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


class HashedBigrams(HashedNgrams):
    """`HashedNgrams` of order 2: the bigram (token[t-1], token[t]) at each step."""

    def __init__(self, buckets: int, dim: int, pad_id: int = 0):
        super().__init__(buckets, dim, pad_id, order=2)
