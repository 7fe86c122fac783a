"""A long-range dependency task: the label is carried by a few sentiment words far from the end.

    python -m seqsent.train experiment=long_range data.distance=100 model=rnn

Each sequence is `lead` (0..`max_lead`, random) neutral filler words, then `n_cues` sentiment
words of the label's polarity, then exactly `distance` filler words: the last cue word lies
`distance` steps before the last token (0 = it is the last token). A forward RNN reads the cue
early and must carry it over `distance` steps of filler. `experiment=long_range` gives the model
that has to (unidirectional, last-step summary): a backward direction or max pooling reads the cue
directly, and the default model has both. Written as Hub-style parquet files and
loaded through `IMDBDataModule`, like `seqsent.data.synthetic`.
"""

from __future__ import annotations

import numpy as np

from seqsent.data.synthetic import NEGATIVE, NEUTRAL, POSITIVE, GeneratedDataModule
from seqsent.errors import SeqsentError

FILLERS = NEUTRAL + [f"w{i}" for i in range(300)]


def make_long_range(
    n: int, distance: int, seed: int, n_cues: int = 3, max_lead: int = 5
) -> tuple[list[str], list[int]]:
    """`n` sequences with balanced labels (`n // 2` positive); one word per token, no punctuation."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for i in range(n):
        label = i % 2
        cues = rng.choice(POSITIVE if label else NEGATIVE, size=n_cues)
        lead = rng.choice(FILLERS, size=int(rng.integers(0, max_lead + 1)))
        tail = rng.choice(FILLERS, size=distance)
        texts.append(" ".join([*lead, *cues, *tail]))
        labels.append(label)
    order = rng.permutation(n)
    return [texts[i] for i in order], [labels[i] for i in order]


def longest(distance: int, n_cues: int, max_lead: int) -> int:
    """Tokens in the longest generated sequence."""
    return max_lead + n_cues + distance


class LongRangeDataModule(GeneratedDataModule):
    """`IMDBDataModule` over `make_long_range` sequences, generated once per settings.

    `max_len=None` fits every sequence; a `max_len` that would cut off the cue words, or move them
    (`truncation=post` cutting the filler after them), is an error.
    """

    def __init__(
        self,
        distance: int = 50,
        n_train: int = 4000,
        n_test: int = 1000,
        n_cues: int = 3,
        max_lead: int = 5,
        data_seed: int = 0,
        max_len: int | None = None,
        **kwargs,
    ):
        if distance < 0 or n_cues < 1 or max_lead < 0:
            raise SeqsentError(
                f"data.distance={distance}, data.n_cues={n_cues}, data.max_lead={max_lead}: "
                "use distance >= 0, n_cues >= 1, max_lead >= 0"
            )
        if n_train < 2 or n_test < 2:
            raise SeqsentError(f"data.n_train={n_train}, data.n_test={n_test}: use >= 2 (both labels)")
        needed = distance + n_cues
        if max_len is not None and max_len < needed:
            raise SeqsentError(
                f"data.max_len={max_len} would cut the cue words off at data.distance={distance}: "
                f"use data.max_len >= {needed} or data.max_len=null (fits every sequence)"
            )
        if kwargs.get("truncation") == "post" and max_len is not None and max_len < longest(distance, n_cues, max_lead):
            raise SeqsentError(
                f"data.truncation=post with data.max_len={max_len} would cut the filler after the cue words: "
                "use data.truncation=pre or data.max_len=null"
            )
        spec = {
            "task": "long_range",
            "distance": distance,
            "n_train": n_train,
            "n_test": n_test,
            "n_cues": n_cues,
            "max_lead": max_lead,
            "data_seed": data_seed,
            "v": 1,
        }
        kwargs["path"] = self.generated_path("long_range", spec, kwargs.get("cache_dir"))
        super().__init__(max_len=max_len or longest(distance, n_cues, max_lead), **kwargs)
        self.distance, self.n_train, self.n_test = distance, n_train, n_test
        self.n_cues, self.max_lead, self.data_seed = n_cues, max_lead, data_seed

    def make_splits(self) -> dict[str, tuple[list[str], list[int]]]:
        make = {"distance": self.distance, "n_cues": self.n_cues, "max_lead": self.max_lead}
        return {
            "train": make_long_range(self.n_train, seed=self.data_seed, **make),
            "test": make_long_range(self.n_test, seed=self.data_seed + 1, **make),
        }
