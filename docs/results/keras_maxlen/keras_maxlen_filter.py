"""Write IMDB parquet files holding only the reviews `keras.datasets.imdb.load_data(maxlen=N)` keeps.

A study of the notebook's figures (README.md beside this file): Keras' `load_data(maxlen=...)` does
not truncate, it drops every review of `maxlen` ids or more (its start id included), in train and
test alike. A notebook that passed its length 200 to `load_data` as well as to `pad_sequences`
trained and tested on the shorter part of IMDB only. This writes that subset, so seqsent's recipes
can be run on it:

    python docs/results/keras_maxlen/keras_maxlen_filter.py --data ../shared/data/imdb --out /tmp/imdb_keras_maxlen200
    python -m seqsent.train -m experiment=seed_lstm model=rnn,lstm seed=0,1,2 data.path=/tmp/imdb_keras_maxlen200

The ids are counted as the Keras dataset's: lowercased words (apostrophes kept inside them), each
`<br />` one "br" word, punctuation dropped, plus the start id. That count is an approximation of
the dataset's own tokenization (done by its authors; the text behind it is not published). Prints
JSON: reviews and positives kept per split. Refuses an existing --out; the data stays outside the
repository.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from seqsent.data.sources import load_splits
from seqsent.data.synthetic import write_parquet_dir
from seqsent.errors import SeqsentError, report_errors
from seqsent.utils import check_new_output

WORD = re.compile(r"[a-z0-9']+")


def keras_length(text: str) -> int:
    """Ids `keras.datasets.imdb` gives a review (approximately): its words, "br" for each `<br />`, a start id."""
    return 1 + len(WORD.findall(text.lower().replace("<br />", " br ")))


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="IMDB parquet or aclImdb directory")
    parser.add_argument("--out", required=True, type=Path, help="new directory for the filtered parquet files")
    parser.add_argument("--maxlen", type=int, default=200, help="Keras' maxlen: reviews of this many ids or more go")
    args = parser.parse_args(argv)
    if args.maxlen < 2:
        raise SeqsentError(f"--maxlen {args.maxlen}: use at least 2 (the start id and one word)")
    check_new_output(args.out)
    return args


@report_errors
def main(argv: list[str]) -> dict:
    args = parse_args(argv)
    splits = load_splits(args.data, ("train", "test"), option="--data")
    summary: dict = {"maxlen": args.maxlen, "out": str(args.out)}
    for name, split in splits.items():
        keep = [i for i, text in enumerate(split.texts) if keras_length(text) < args.maxlen]
        texts = [split.texts[i] for i in keep]
        labels = [int(split.labels[i]) for i in keep]
        write_parquet_dir(args.out, {name: (texts, labels)})
        summary[name] = {"reviews": len(keep), "of": len(split.texts), "positive": sum(labels)}
        print(f"[keras_maxlen_filter] {name}: kept {len(keep)} of {len(split.texts)} reviews", file=sys.stderr)
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
