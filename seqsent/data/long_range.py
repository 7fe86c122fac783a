"""A long-range dependency task: the label is carried by a few sentiment words far from the end.

    python -m seqsent.train experiment=long_range data.distance=100 model=rnn

Each sequence is `lead` (0..`max_lead`, random) neutral filler words, then `n_cues` sentiment
words of the label's polarity, then exactly `distance` filler words: the last cue word lies
`distance` steps before the last token. A forward RNN must carry the cue over the filler; a
backward direction or max pooling reads it directly (docs/diagnostics.md#long-range-task).
"""

from __future__ import annotations

import numpy as np

from seqsent.data.synthetic import FILLERS, NEGATIVE, POSITIVE, GeneratedDataModule, Splits
from seqsent.errors import SeqsentError, check_types


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
        texts.append(" ".join([*lead, *cues, *rng.choice(FILLERS, size=distance)]))
        labels.append(label)
    order = rng.permutation(n)
    return [texts[i] for i in order], [labels[i] for i in order]


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
        check_types(LongRangeDataModule.__init__, locals(), "data.")
        if distance < 0 or n_cues < 1 or max_lead < 0 or n_train < 2 or n_test < 2:
            raise SeqsentError(
                f"data.distance={distance}, data.n_cues={n_cues}, data.max_lead={max_lead}, data.n_train={n_train}, "
                f"data.n_test={n_test}: use distance >= 0, n_cues >= 1, max_lead >= 0, n_train and n_test >= 2"
            )
        longest = max_lead + n_cues + distance
        if max_len is not None and max_len < distance + n_cues:
            raise SeqsentError(
                f"data.max_len={max_len} would cut the cue words off at data.distance={distance}: "
                f"use data.max_len >= {distance + n_cues} or data.max_len=null (fits every sequence)"
            )
        if kwargs.get("truncation") == "post" and max_len is not None and max_len < longest:
            raise SeqsentError(
                f"data.truncation=post with data.max_len={max_len} would cut the filler after the cue words: "
                "use data.truncation=pre or data.max_len=null"
            )
        spec = {"task": "long_range", "distance": distance, "n_train": n_train, "n_test": n_test}
        spec |= {"n_cues": n_cues, "max_lead": max_lead, "data_seed": data_seed, "v": 1}
        super().__init__("long_range", spec, max_len=max_len or longest, **kwargs)

    def make_splits(self) -> Splits:
        s = self.spec
        make = {"distance": s["distance"], "n_cues": s["n_cues"], "max_lead": s["max_lead"]}
        return {
            "train": make_long_range(s["n_train"], seed=s["data_seed"], **make),
            "test": make_long_range(s["n_test"], seed=s["data_seed"] + 1, **make),
        }
