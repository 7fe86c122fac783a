"""Pretrained word vectors for a `TextClassifierNet`'s embedding (`model.pretrained_embeddings=FILE`).

    python scripts/word_vectors.py --out vectors.txt                    # word2vec on the training + unlabeled text
    python -m seqsent.train model.pretrained_embeddings=vectors.txt model.embed_dim=256

Reads the word2vec / GloVe / fastText `.vec` text format (`word v1 ... vD` per line, with or without word2vec's
`count dim` first line; gzipped too) line by line without gensim, keeping only the rows of the vocabulary's
words, so a GloVe file of gigabytes needs memory for the vocabulary only. A word2vec binary file (`.bin`) is
read with gensim (the `wordvectors` extra). Each vocabulary word takes the row spelled as it is, else the first
row whose word lowercases to it (cased files such as GloVe 840B); the special tokens and words without a row
keep their initial vectors. The coverage says how many vocabulary words and training tokens got a vector.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from seqsent.errors import SeqsentError

MAKE_HINT = "write one with scripts/word_vectors.py, or give a word2vec/GloVe text file"
EXTRA_HINT = "pip install 'seqsent[wordvectors]'"


@dataclass
class WordVectors:
    """The rows of a vectors file for the wanted words: `vectors[word]` (float32, `dim` numbers), and the
    words that took a row of another case (`lowercased`)."""

    dim: int
    vectors: dict[str, np.ndarray]
    lowercased: set[str]


@dataclass
class Coverage:
    """How much of the vocabulary (specials excluded) and of the training tokens a vectors file covered."""

    path: str
    dim: int
    words: int  # vocabulary words, specials excluded
    found: int  # of them, with a vector
    lowercased: int  # of those, through another case's row
    token_share: float | None  # share of the training tokens (UNK included) whose word got a vector

    @property
    def word_share(self) -> float:
        return self.found / self.words if self.words else 0.0

    def summary(self) -> str:
        tokens = f", {self.token_share:.1%} of the training tokens" if self.token_share is not None else ""
        return (
            f"word vectors: {self.path} ({self.dim} numbers): {self.found:,} of {self.words:,} vocabulary words "
            f"({self.word_share:.1%}; {self.lowercased:,} by a lowercased row){tokens}"
        )

    def metrics(self) -> dict[str, Any]:
        """The coverage as `metrics.json` entries."""
        found = {"embeddings/file": self.path, "embeddings/words_found": self.found}
        found["embeddings/vocab_coverage"] = round(self.word_share, 4)
        if self.token_share is not None:
            found["embeddings/token_coverage"] = round(self.token_share, 4)
        return found


def vectors_file(path: str | Path) -> Path:
    """The vectors file `path` names; a one-line error when it is missing or a directory."""
    file = Path(path).expanduser()
    if not file.is_file():
        problem = "is a directory: name the file" if file.is_dir() else "does not exist"
        raise SeqsentError(f"model.pretrained_embeddings={path} {problem}: {MAKE_HINT}")
    return file


def read_vectors(path: str | Path, words: Collection[str]) -> WordVectors:
    """The vectors of `words` in the file `path`: text format streamed, `.bin` through gensim."""
    file = vectors_file(path)
    if file.name.endswith((".bin", ".bin.gz")):
        return _read_binary(file, words)
    with _open_text(file) as lines:
        return _read_text(file, lines, words)


def _open_text(file: Path) -> io.TextIOBase:
    with open(file, "rb") as fh:
        gzipped = fh.read(2) == b"\x1f\x8b"
    # undecodable bytes become U+FFFD: such a word matches no vocabulary word, and the file still reads
    if gzipped:
        return gzip.open(file, "rt", encoding="utf-8", errors="replace")
    return open(file, encoding="utf-8", errors="replace")


def _read_text(file: Path, lines: Iterator[str], words: Collection[str]) -> WordVectors:
    first = next(lines, "")
    parts = first.split()
    header = len(parts) == 2 and all(p.isdigit() for p in parts)
    if not parts or (header and int(parts[1]) < 1):
        raise SeqsentError(f"{file} holds no vectors (first line {first.strip()[:40]!r}): {MAKE_HINT}")
    dim = int(parts[1]) if header else len(parts) - 1
    exact: dict[str, np.ndarray] = {}
    other_case: dict[str, np.ndarray] = {}
    rows = lines if header else _chain_first(first, lines)
    for number, line in enumerate(rows, 2 if header else 1):
        word = line[: line.find(" ")]
        lower = word.lower()
        if word not in words and lower not in words:  # most lines of a large file: no number parsed
            continue
        fields = line.rstrip().rsplit(" ", dim)
        if fields[0] != word:  # a "word" with spaces: never a token of seqsent's tokenizers
            continue
        vector = _numbers(fields[1:], dim, file, number)
        if word in words:
            exact[word] = vector
        if lower != word and lower in words and lower not in other_case:  # the most frequent spelling comes first
            other_case[lower] = vector
    lowercased = set(other_case) - set(exact)
    return WordVectors(dim, {**{w: other_case[w] for w in lowercased}, **exact}, lowercased)


def _chain_first(first: str, lines: Iterator[str]) -> Iterator[str]:
    yield first
    yield from lines


def _numbers(fields: list[str], dim: int, file: Path, number: int) -> np.ndarray:
    try:
        vector = np.asarray(fields, dtype=np.float32)
    except ValueError:
        vector = None
    if vector is None or len(vector) != dim:
        raise SeqsentError(
            f"line {number} of {file} is not a word and {dim} numbers (a word2vec binary file? name it .bin): "
            f"{MAKE_HINT}"
        )
    return vector


def _read_binary(file: Path, words: Collection[str]) -> WordVectors:
    try:
        from gensim.models import KeyedVectors
    except ImportError:
        raise SeqsentError(f"reading {file} (word2vec binary) needs gensim: {EXTRA_HINT}") from None
    try:
        kv = KeyedVectors.load_word2vec_format(str(file), binary=True, unicode_errors="replace")
    except (ValueError, EOFError, UnicodeDecodeError) as err:
        raise SeqsentError(f"cannot read {file} as a word2vec binary file ({err}): {MAKE_HINT}") from None
    exact = {w: kv[w].astype(np.float32) for w in kv.index_to_key if w in words}
    other_case: dict[str, np.ndarray] = {}
    for w in kv.index_to_key:
        if w.lower() in words and w.lower() not in exact and w.lower() not in other_case:
            other_case[w.lower()] = kv[w].astype(np.float32)
    return WordVectors(kv.vector_size, {**other_case, **exact}, set(other_case))


def fill_embedding(
    embedding: nn.Embedding, vocab: Mapping[str, int], path: str | Path, token_counts: np.ndarray | None = None
) -> Coverage:
    """Copy the file's vectors into the rows of `vocab`'s words (`{word: id}`, specials left out by the
    caller); `token_counts[id]`: how often each id occurs in the training text (for the token coverage)."""
    found = read_vectors(path, vocab)
    if found.dim != embedding.embedding_dim:
        raise SeqsentError(
            f"{path} holds {found.dim}-number vectors but model.embed_dim={embedding.embedding_dim}: "
            f"set model.embed_dim={found.dim}"
        )
    ids = [vocab[w] for w in found.vectors]
    if ids:
        with torch.no_grad():
            rows = torch.from_numpy(np.stack(list(found.vectors.values())))
            embedding.weight[torch.tensor(ids)] = rows.to(embedding.weight)
    share = None
    if token_counts is not None and token_counts.sum() > 0:
        share = float(token_counts[ids].sum() / token_counts.sum())
    return Coverage(str(path), found.dim, len(vocab), len(ids), len(found.lowercased), share)


def token_counts(ids: np.ndarray, offsets: np.ndarray, rows: np.ndarray, size: int) -> np.ndarray:
    """How often each id (< `size`) occurs in the texts `rows` of a flat id array with offsets."""
    lengths = np.diff(offsets)
    chosen = np.zeros(len(lengths), dtype=bool)
    chosen[rows] = True
    return np.bincount(ids[np.repeat(chosen, lengths)], minlength=size)


def load_for_data(embedding: nn.Embedding, path: str | Path, datamodule: Any) -> Coverage:
    """Fill `embedding` from the file for a set-up seqsent data module: its vocabulary (`tokenizer_json`,
    specials left at their initial vectors) and its training part's token counts."""
    from seqsent.data.vocab import tokenizer_from_json

    tok = tokenizer_from_json(datamodule.tokenizer_json)
    specials = {t.content for t in tok.get_added_tokens_decoder().values() if t.special}
    vocab = {w: i for w, i in tok.get_vocab().items() if w not in specials}
    train = datamodule.train_set
    counts = token_counts(train.ids, train.offsets, train.index, embedding.num_embeddings)
    return fill_embedding(embedding, vocab, path, counts)
