"""Train word vectors (gensim word2vec or fastText) on a dataset's training and unlabeled text, for
`python -m seqsent.train model.pretrained_embeddings=FILE`.

    python scripts/word_vectors.py --out vectors/imdb_w2v256.txt                    # IMDB, the default data
    python scripts/word_vectors.py --out vectors/sst2.txt --dim 256 data=sst2       # data overrides as for training
    python -m seqsent.train model.pretrained_embeddings=vectors/imdb_w2v256.txt

The text is the language model's (issue 25): the classifier's training part (its training split less its
validation fraction, or all of it when the data has a validation split) and the unlabeled split when the data
has one (IMDB: 50,000 reviews), less every review whose encoding is one of the classifier's validation or test
reviews (IMDB's unlabeled split repeats some test reviews). The data settings are the training run's (the same
`data=...`/`data.*` overrides): the reviews are encoded with the classifier's own vocabulary and tokenizer rules
(`seqsent.data.vocab`), and the vectors are for its words (`<unk>` tokens are left out of the text). Needs gensim
(`pip install 'seqsent[wordvectors]'`). Writes the word2vec text format (a new file); gensim's progress goes to
stderr, a JSON summary to stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from hydra.utils import instantiate

from seqsent.data.datamodule import TextClassificationDataModule
from seqsent.data.soft_labels import drop_known, review_keys
from seqsent.data.sources import UNLABELED, load_splits
from seqsent.data.vocab import UNK_ID, encode, tokenizer_from_json
from seqsent.errors import SeqsentError, report_errors
from seqsent.utils import check_new_output, config_dir, register_resolvers

EXTRA_HINT = "pip install 'seqsent[wordvectors]'"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", help="data overrides as for training: data=sst2 data.vocab_size=...")
    parser.add_argument("--out", type=Path, required=True, help="the vectors file to write (new), word2vec text format")
    parser.add_argument("--algorithm", choices=("word2vec", "fasttext"), default="word2vec")
    parser.add_argument("--dim", type=int, default=256, help="numbers per vector: the training's model.embed_dim")
    parser.add_argument("--window", type=int, default=5, help="context words each side")
    parser.add_argument("--min-count", type=int, default=2, help="words seen fewer times get no vector")
    parser.add_argument("--epochs", type=int, default=5, help="passes over the text")
    parser.add_argument("--cbow", action="store_true", help="CBOW instead of skip-gram (faster)")
    parser.add_argument("--negative", type=int, default=5, help="negative samples per word")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="gensim threads")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for override in args.overrides:
        if not override.lstrip("+~").startswith("data"):
            parser.error(f"{override!r}: only data settings (data=..., data.*=...) choose the text")
    for flag in ("dim", "window", "min_count", "epochs", "negative", "workers"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be >= 1")
    return args


def data_module(overrides: list[str]) -> TextClassificationDataModule:
    """The training run's data module for these overrides (conf/train.yaml's `data`), set up."""
    register_resolvers()
    try:
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
            cfg = compose("train", overrides=overrides)
    except HydraException as err:
        raise SeqsentError(str(err).splitlines()[0]) from None
    datamodule = instantiate(cfg.data, soft_labels=None)  # the unlabeled reviews come in once, unlabeled
    datamodule.prepare_data()
    datamodule.setup("fit")
    return datamodule


def flatten(reviews: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Reviews as a flat id array with offsets."""
    offsets = np.zeros(len(reviews) + 1, dtype=np.int64)
    np.cumsum([len(r) for r in reviews], out=offsets[1:])
    return (np.concatenate(reviews) if reviews else np.zeros(0, np.int32)), offsets


def lm_text(datamodule: TextClassificationDataModule) -> tuple[np.ndarray, np.ndarray, dict]:
    """The training part and the unlabeled split, encoded, less the validation and test reviews:
    (ids, offsets, counts)."""
    train = datamodule.train_set
    ids, offsets = flatten([train[i][0] for i in range(len(train))])
    unlabeled = load_splits(datamodule.source, (), optional=(UNLABELED,)).get(UNLABELED)
    if unlabeled is not None:
        extra_ids, extra_offsets = encode(tokenizer_from_json(datamodule.tokenizer_json), unlabeled.texts)
        ids = np.concatenate([ids, extra_ids.astype(ids.dtype)])
        offsets = np.concatenate([offsets, extra_offsets[1:] + offsets[-1]])
    held_out = set().union(*(review_keys(s.ids, s.offsets, s.index) for s in (datamodule.val_set, datamodule.test_set)))
    ids, offsets, _, dropped = drop_known(ids, offsets, np.zeros(len(offsets) - 1), held_out)
    counts = {
        "training_part_reviews": len(train),
        "unlabeled_reviews": len(unlabeled.texts) if unlabeled is not None else 0,
        "dropped_as_val_or_test": dropped,
        "documents": len(offsets) - 1,
        "tokens": int((ids != UNK_ID).sum()),
    }
    return ids, offsets, counts


class Sentences:
    """The documents as lists of words, `<unk>` left out; iterable again for every gensim pass."""

    def __init__(self, ids: np.ndarray, offsets: np.ndarray, words: list[str]):
        self.ids, self.offsets, self.words = ids, offsets, words

    def __iter__(self) -> Iterator[list[str]]:
        for start, stop in zip(self.offsets[:-1], self.offsets[1:]):
            yield [self.words[i] for i in self.ids[start:stop].tolist() if i != UNK_ID]


def train_vectors(sentences: Sentences, args: argparse.Namespace):
    """gensim's KeyedVectors of a word2vec or fastText model trained on `sentences`."""
    try:
        from gensim.models import FastText, Word2Vec
    except ImportError:
        raise SeqsentError(f"scripts/word_vectors.py needs gensim: {EXTRA_HINT}") from None
    logging.basicConfig(format="%(asctime)s %(message)s", level=logging.WARNING, stream=sys.stderr)
    logging.getLogger("gensim").setLevel(logging.INFO)  # its progress: words/s and the share done, per pass
    model_cls = FastText if args.algorithm == "fasttext" else Word2Vec
    model = model_cls(
        sentences,
        vector_size=args.dim,
        window=args.window,
        min_count=args.min_count,
        sg=0 if args.cbow else 1,
        negative=args.negative,
        epochs=args.epochs,
        workers=args.workers,
        seed=args.seed,
    )
    return model.wv


@report_errors
def main(argv: list[str]) -> dict:
    args = parse_args(argv)
    check_new_output(args.out)
    start = time.perf_counter()
    datamodule = data_module(args.overrides)
    tok = tokenizer_from_json(datamodule.tokenizer_json)
    ids, offsets, counts = lm_text(datamodule)
    print(
        f"text: {counts['documents']} documents ({counts['training_part_reviews']} of the training part, "
        f"{counts['unlabeled_reviews']} unlabeled, {counts['dropped_as_val_or_test']} dropped as validation/test "
        f"reviews), {counts['tokens']} tokens; training {args.algorithm}...",
        file=sys.stderr,
        flush=True,
    )
    words = [tok.id_to_token(i) for i in range(tok.get_vocab_size())]
    vectors = train_vectors(Sentences(ids, offsets, words), args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(f".{args.out.name}.{os.getpid()}.tmp")
    try:
        vectors.save_word2vec_format(str(tmp), binary=False)
        os.replace(tmp, args.out)
    finally:
        tmp.unlink(missing_ok=True)
    summary = {
        "out": str(args.out),
        "data": str(datamodule.path),
        "algorithm": args.algorithm,
        "dim": args.dim,
        "settings": {k: getattr(args, k) for k in ("window", "min_count", "epochs", "cbow", "negative", "seed")},
        **counts,
        "vocabulary_words": tok.get_vocab_size() - 2,  # less <pad> and <unk>
        "vectors": len(vectors.index_to_key),
        "seconds": round(time.perf_counter() - start, 1),
    }
    print(json.dumps(summary, indent=2))
    print(f"{len(vectors.index_to_key)} word vectors written to {args.out}", file=sys.stderr)
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
