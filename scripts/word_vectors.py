"""Train word vectors (gensim word2vec or fastText) on the language model's text, for
`python -m seqsent.train model.pretrained_embeddings=FILE`.

    python scripts/word_vectors.py --out vectors/imdb_w2v256.txt                     # IMDB, the default data
    python scripts/word_vectors.py --out vectors/sst2.txt data=sst2 lm_data.vocab_size=100000
    python -m seqsent.train model.pretrained_embeddings=vectors/imdb_w2v256.txt

The text is `python -m seqsent.pretrain`'s (`seqsent.data.lm.LanguageModelDataModule`, the same `data=...`,
`data.*` and `lm_data.*` overrides, and its cache): the classifier's training part (its training split less its
validation fraction, or all of it when the data has a validation split) and the unlabeled split when the data
has one (IMDB: 50,000 reviews), less every review whose encoding is one of the classifier's validation or test
reviews; its held-out documents are read too (they are neither). Words are the classifier's tokenizer rules
(`seqsent.data.vocab`, `data.punctuation`); the language model's vocabulary (`lm_data.vocab_size`,
`lm_data.min_frequency`) bounds the words that get vectors, and `<unk>` tokens are left out of the text. Needs
gensim (`pip install 'seqsent[wordvectors]'`). Writes the word2vec text format (a new file); gensim's progress
goes to stderr, a JSON summary to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from hydra.utils import instantiate

from seqsent.data.lm import Documents, LanguageModelDataModule
from seqsent.data.vocab import UNK_ID, tokenizer_from_json
from seqsent.errors import SeqsentError, report_errors
from seqsent.utils import check_new_output, config_dir, register_resolvers

EXTRA_HINT = "pip install 'seqsent[wordvectors]'"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", help="data and lm_data overrides as for seqsent.pretrain")
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
        if not override.lstrip("+~").startswith(("data", "lm_data.")):
            parser.error(f"{override!r}: only data=..., data.* and lm_data.* settings choose the text")
    for flag in ("dim", "window", "min_count", "epochs", "negative", "workers"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be >= 1")
    return args


def lm_data_module(overrides: list[str]) -> LanguageModelDataModule:
    """`seqsent.pretrain`'s text for these overrides (conf/pretrain.yaml's `data` and `lm_data`), set up."""
    register_resolvers()
    try:
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
            cfg = compose("pretrain", overrides=overrides)
    except HydraException as err:
        raise SeqsentError(str(err).splitlines()[0]) from None
    classifier = instantiate(cfg.data, soft_labels=None)  # the unlabeled reviews come in once, unlabeled
    # windows are never cut here (every document is read whole): the smallest settings pass its checks
    lm = instantiate(cfg.lm_data, classifier=classifier, batch_size=1, bptt=2)
    with contextlib.redirect_stdout(sys.stderr):  # its progress lines: stdout is the summary's
        lm.prepare_data()
        lm.setup("fit")
    return lm


class Sentences:
    """Documents as lists of words, `<unk>` left out; iterable again for every gensim pass."""

    def __init__(self, parts: list[Documents], words: list[str]):
        self.parts, self.words = parts, words

    def __iter__(self) -> Iterator[list[str]]:
        for docs in self.parts:
            for start, stop in zip(docs.offsets[:-1], docs.offsets[1:]):
                yield [self.words[i] for i in docs.ids[start:stop].tolist() if i != UNK_ID]


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
    lm = lm_data_module(args.overrides)
    parts = [lm.documents["train"], lm.documents["heldout"]]
    counts = {
        "documents": sum(len(docs) for docs in parts),
        "tokens": sum(int((docs.ids != UNK_ID).sum()) for docs in parts),  # words read, <unk> left out
        **{k: lm.stats[k] for k in ("classifier_train_documents", "unlabeled_documents", "duplicates_dropped")},
    }
    print(
        f"text: {counts['documents']} documents ({counts['classifier_train_documents']} of the classifier's training "
        f"part, {counts['unlabeled_documents']} unlabeled, {counts['duplicates_dropped']} dropped as its validation or "
        f"test reviews), {counts['tokens']} words; training {args.algorithm}...",
        file=sys.stderr,
        flush=True,
    )
    tok = tokenizer_from_json(lm.tokenizer_json)
    words = [tok.id_to_token(i) for i in range(tok.get_vocab_size())]
    vectors = train_vectors(Sentences(parts, words), args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(f".{args.out.name}.{os.getpid()}.tmp")
    try:
        vectors.save_word2vec_format(str(tmp), binary=False)
        os.replace(tmp, args.out)
    finally:
        tmp.unlink(missing_ok=True)
    summary = {
        "out": str(args.out),
        "data": str(lm.classifier.path),
        "algorithm": args.algorithm,
        "dim": args.dim,
        "settings": {k: getattr(args, k) for k in ("window", "min_count", "epochs", "cbow", "negative", "seed")},
        **counts,
        "vocabulary_words": tok.get_vocab_size() - 3,  # less <pad>, <unk> and <eos>
        "vectors": len(vectors.index_to_key),
        "seconds": round(time.perf_counter() - start, 1),
    }
    print(json.dumps(summary, indent=2))
    print(f"{len(vectors.index_to_key)} word vectors written to {args.out}", file=sys.stderr)
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
