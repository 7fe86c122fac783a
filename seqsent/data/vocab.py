"""Word-level tokenization with the `tokenizers` library.

Normalization: HTML-like tags such as IMDB's `<br />` become spaces, then lowercase. `detokenize="ptb"` first
joins what Penn-Treebank tokenization split (SST-2's text: `does n't`, `ca n't`, `can not`, `gon na`, `-lrb-`,
its quote pairs) back into plain text's form, so such text reads as a vocabulary built on raw text (IMDB's) reads
its own: `doesn ' t`, not `does n ' t`.
Pre-tokenization: `\\w+|[^\\w\\s]+`, so punctuation is split off words ("great!" -> "great", "!");
with `punctuation="drop"` it is removed instead (words only, like the Keras IMDB dataset's word ids).
Specials: `<pad>` = 0 and `<unk>` = 1, counted inside `vocab_size`; a language model's vocabulary adds the
document boundary `<eos>` = 2 (`specials=(PAD, UNK, EOS)`).
`tokenizers` encodes in parallel over the cores (preparation times: docs/speed.md). DataLoader workers
only slice the encoded arrays, so forking them after encoding needs no TOKENIZERS_PARALLELISM setting.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from itertools import chain

import numpy as np
from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers

PAD, UNK, EOS = "<pad>", "<unk>", "<eos>"
PAD_ID, UNK_ID, EOS_ID = 0, 1, 2
TOKENIZER_VERSION = "wordlevel-v1"
PUNCTUATION = ("keep", "drop")
TAG_PATTERN = r"<[^<>]{0,20}>"
PUNCT_PATTERN = r"[^\w\s]+"
DETOKENIZE = ("none", "ptb")
PTB_RULES = (  # (pattern, replacement), in order, ahead of the other normalization
    (r"(?i)\s+n't\b", "n't"),
    (r"(?i)\bcan\s+not\b", "cannot"),
    (r"(?i)\bgon\s+na\b", "gonna"),
    (r"(?i)\bwan\s+na\b", "wanna"),
    (r"(?i)\bgot\s+ta\b", "gotta"),
    (r"(?i)-lrb-", "("),
    (r"(?i)-rrb-", ")"),
    (r"(?i)-lsb-", "["),
    (r"(?i)-rsb-", "]"),
    (r"(?i)-lcb-", "{"),
    (r"(?i)-rcb-", "}"),
    (r"``|''", '"'),
)
ENCODE_BATCH = 10_000  # reviews per `encode_batch_fast` call: bounds the Encoding objects alive at once


def new_tokenizer(punctuation: str = "keep", detokenize: str = "none") -> Tokenizer:
    """An untrained word-level tokenizer with seqsent's normalization; `drop` removes punctuation, `ptb`
    first joins Penn-Treebank splits. The rules travel inside the tokenizer's JSON, so a checkpoint encodes
    raw text the same way."""
    tok = Tokenizer(models.WordLevel(unk_token=UNK))
    steps = [normalizers.Replace(Regex(TAG_PATTERN), " ")]
    if punctuation == "drop":
        steps.append(normalizers.Replace(Regex(PUNCT_PATTERN), " "))
    tok.normalizer = normalizers.Sequence([*steps, normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return with_detokenize(tok, detokenize)


def with_detokenize(tok: Tokenizer, detokenize: str) -> Tokenizer:
    """`tok` reading text through `detokenize`'s rules first ("none": `tok` as it is). The vocabulary is
    unchanged, so a language model's tokenizer can take them; a tokenizer that has them is returned as it is."""
    if detokenize == "none" or json.dumps(PTB_RULES[0][0]) in tok.to_str():  # the rules, as its JSON writes them
        return tok
    rules = [normalizers.Replace(Regex(pattern), text) for pattern, text in PTB_RULES]
    tok.normalizer = normalizers.Sequence([*rules, tok.normalizer] if tok.normalizer else rules)
    return tok


def train_tokenizer(
    texts: list[str],
    vocab_size: int,
    min_frequency: int = 1,
    punctuation: str = "keep",
    specials: tuple[str, ...] = (PAD, UNK),
    detokenize: str = "none",
) -> Tokenizer:
    """Build the vocabulary: `specials` (ids 0, 1, ... in order), then the most frequent tokens of `texts`,
    `vocab_size` in all."""
    tok = new_tokenizer(punctuation, detokenize)
    trainer = trainers.WordLevelTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=list(specials), show_progress=False
    )
    tok.train_from_iterator(_batches(texts, 1000), trainer=trainer, length=len(texts))
    if [tok.token_to_id(s) for s in specials] != list(range(len(specials))):  # pragma: no cover - library contract
        raise RuntimeError(f"tokenizers did not place the specials {specials} at ids 0..{len(specials) - 1}")
    return tok


def _batches(texts: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(texts), size):
        yield texts[start : start + size]


def vocabulary_digest(tokenizer_json: str) -> str:
    """A vocabulary's sha256 (hex): how cache keys and run records name a given vocabulary."""
    return hashlib.sha256(tokenizer_json.encode()).hexdigest()


def tokenizer_from_json(text: str) -> Tokenizer:
    """Rebuild a tokenizer saved with `Tokenizer.to_str()` (JSON, never pickle)."""
    json.loads(text)  # a clear JSON error before the tokenizers one
    return Tokenizer.from_str(text)


def encode(tok: Tokenizer, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Encode texts to a flat int32 id array and int64 offsets (`ids[off[i]:off[i+1]]`).

    An empty review (or one of only tags/whitespace) becomes a single `<unk>`, so every
    review has length >= 1.
    """
    per_text: list[list[int]] = []
    for batch in _batches(texts, ENCODE_BATCH):
        per_text += [enc.ids or [UNK_ID] for enc in tok.encode_batch_fast(batch, add_special_tokens=False)]
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, per_text), dtype=np.int64, count=len(per_text)), out=offsets[1:])
    ids = np.fromiter(chain.from_iterable(per_text), dtype=np.int32, count=int(offsets[-1]))
    return ids, offsets
