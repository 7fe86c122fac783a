"""`HashedBigrams`: an embedding of each token's bigram (the token and the one before it), hashed.

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

MULTIPLIER = 1_000_003  # an odd prime: mixes the first token into all bits of the bucket index


class HashedBigrams(nn.Module):
    """Vectors (T, B, dim) for the bigrams of left-aligned time-major token ids (T, B).

    Args:
        buckets: rows of the hashed table (distinct bigrams sharing a row share its vector).
        dim: size of each bigram vector.
        pad_id: the padding id, the left neighbour of every review's first token.
    """

    def __init__(self, buckets: int, dim: int, pad_id: int = 0):
        super().__init__()
        if buckets < 1 or dim < 1:
            raise ValueError(f"bigram buckets={buckets}, dim={dim}: use >= 1 each")
        self.buckets, self.pad_id = buckets, pad_id
        self.table = nn.Embedding(buckets, dim)

    def ids(self, tokens: Tensor) -> Tensor:
        """Bucket index (T, B) of the bigram ending at each step of time-major tokens (T, B)."""
        tokens = tokens.long()  # int64 whatever the input: the product overflows int32
        before = tokens.roll(1, dims=0)
        before[0] = self.pad_id
        return (before * MULTIPLIER + tokens) % self.buckets

    def forward(self, tokens: Tensor) -> Tensor:
        return self.table(self.ids(tokens))

    def extra_repr(self) -> str:
        return f"buckets={self.buckets}, pad_id={self.pad_id}"
