"""Word-level tokenization with the `tokenizers` library.

Normalization: HTML-like tags such as IMDB's `<br />` become spaces, then lowercase.
Pre-tokenization: `\\w+|[^\\w\\s]+`, so punctuation is split off words ("great!" -> "great", "!");
with `punctuation="drop"` it is removed instead (words only, like the Keras IMDB dataset's word ids).
Specials: `<pad>` = 0 and `<unk>` = 1, counted inside `vocab_size`.

Speed: `tokenizers` spends most of its time in Oniguruma's Unicode regex and its per-character
alignment bookkeeping. For ASCII reviews (91% of IMDB) Python's `re` finds the same words 2-3x faster
on one core (`seqsent.ascii_words`), so `encode` splits those in Python, for large batches half of
them in a helper process on the second core, while `tokenizers` encodes the rest in a thread.
The tokenizer stays the definition: the ids are identical, which tests check on every ASCII character
and on all of IMDB. Measured and not kept: sending `tokenizers` a share of the ASCII reviews too, to
balance the cores (no gain); feeding the vocabulary trainer pre-split words (as slow as raw text);
splitting the training split once in Python, counting, ranking as the trainer does and reusing the
split for its ids (the same tokenizer JSON and ids on all of IMDB, but 6.7-7.4 s against the trainer
and the encoding's 7.1 s: Python's per-word work costs as much as the trainer saves).
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers

from seqsent.ascii_words import TAG_PATTERN, ascii_ids

PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1
TOKENIZER_VERSION = "wordlevel-v1"
PUNCTUATION = ("keep", "drop")
PUNCT_PATTERN = r"[^\w\s]+"
# a helper process splits half the ASCII reviews from this many on (fewer: its start-up costs more than it saves)
HELPER_MIN_TEXTS = 4000
HELPER_COMMAND = [sys.executable, "-m", "seqsent.ascii_words"]
HELPER_TIMEOUT_S = 600


def new_tokenizer(punctuation: str = "keep") -> Tokenizer:
    """An untrained word-level tokenizer with seqsent's normalization; `drop` removes punctuation.
    The rules travel inside the tokenizer's JSON, so a checkpoint encodes raw text the same way."""
    tok = Tokenizer(models.WordLevel(unk_token=UNK))
    steps = [normalizers.Replace(Regex(TAG_PATTERN), " ")]
    if punctuation == "drop":
        steps.append(normalizers.Replace(Regex(PUNCT_PATTERN), " "))
    tok.normalizer = normalizers.Sequence([*steps, normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return tok


def train_tokenizer(texts: list[str], vocab_size: int, min_frequency: int = 1, punctuation: str = "keep") -> Tokenizer:
    """Build the vocabulary: the `vocab_size` most frequent tokens of `texts`, specials first."""
    tok = new_tokenizer(punctuation)
    trainer = trainers.WordLevelTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=[PAD, UNK], show_progress=False
    )
    tok.train_from_iterator(_batches(texts), trainer=trainer, length=len(texts))
    if tok.token_to_id(PAD) != PAD_ID or tok.token_to_id(UNK) != UNK_ID:  # pragma: no cover - library contract
        raise RuntimeError("tokenizers did not place <pad>=0 and <unk>=1")
    return tok


def _batches(texts: list[str], size: int = 1000):
    for start in range(0, len(texts), size):
        yield texts[start : start + size]


def _fast_rules(tok: Tokenizer) -> tuple[str, list[str]] | None:
    """(punctuation, special tokens' texts) when `tok` is a tokenizer `new_tokenizer` made and training
    filled (its normalizer and pre-tokenizer, a WordLevel model with `<unk>` at UNK_ID, only `<pad>`
    and `<unk>` added, no truncation or padding), so the ASCII fast path is exact for it; else None."""
    spec = json.loads(tok.to_str())
    model, added = spec["model"], spec.get("added_tokens") or []
    if model.get("type") != "WordLevel" or model.get("unk_token") != UNK or model["vocab"].get(UNK) != UNK_ID:
        return None
    if spec.get("truncation") is not None or spec.get("padding") is not None:
        return None
    if any(token["content"] not in (PAD, UNK) or token.get("normalized") for token in added):
        return None
    for punctuation in PUNCTUATION:
        ref = json.loads(new_tokenizer(punctuation).to_str())
        if spec["normalizer"] == ref["normalizer"] and spec["pre_tokenizer"] == ref["pre_tokenizer"]:
            return punctuation, [token["content"] for token in added]
    return None


def tokenizer_from_json(text: str) -> Tokenizer:
    """Rebuild a tokenizer saved with `Tokenizer.to_str()` (JSON, never pickle)."""
    json.loads(text)  # a clear JSON error before the tokenizers one
    return Tokenizer.from_str(text)


def encode(tok: Tokenizer, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Encode texts to a flat int32 id array and int64 offsets (`ids[off[i]:off[i+1]]`).

    An empty review (or one of only tags/whitespace) becomes a single `<unk>`, so every
    review has length >= 1. ASCII reviews are split in Python (for large batches half of them by a
    helper process, `seqsent.ascii_words`) while `tokenizers` encodes the others in a thread (and any
    holding a special token's text, which the tokenizer extracts before normalizing).
    """
    rules = _fast_rules(tok)
    if rules is None:
        slow, fast = list(range(len(texts))), []
    else:
        specials = rules[1]
        is_slow = [not t.isascii() or any(s in t for s in specials) for t in texts]
        slow = [i for i, flag in enumerate(is_slow) if flag]
        fast = [i for i, flag in enumerate(is_slow) if not flag]
    per_text: list = [None] * len(texts)
    with ThreadPoolExecutor(1) as pool:  # tokenizers releases the GIL: it runs beside the Python loop
        future = pool.submit(tok.encode_batch_fast, [texts[i] for i in slow], add_special_tokens=False)
        if fast:
            punctuation = rules[0]
            # the model's own table: get_vocab() also holds added tokens, which WordLevel never looks up
            vocab = tok.get_vocab(with_added_tokens=False)
            mine, theirs = (
                (fast[: len(fast) // 2], fast[len(fast) // 2 :]) if len(fast) >= HELPER_MIN_TEXTS else (fast, [])
            )
            wait = _ascii_ids_beside([texts[i] for i in theirs], vocab, punctuation) if theirs else None
            for i, ids in zip(mine, ascii_ids([texts[i] for i in mine], vocab, punctuation, UNK_ID)):
                per_text[i] = ids
            if theirs:
                got = wait()
                if got is None:  # the helper could not run: split them here
                    got = ascii_ids([texts[i] for i in theirs], vocab, punctuation, UNK_ID)
                for i, ids in zip(theirs, got):
                    per_text[i] = ids
        for i, enc in zip(slow, future.result()):
            per_text[i] = enc.ids
    lengths = np.fromiter((max(len(ids), 1) for ids in per_text), dtype=np.int64, count=len(texts))
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    ids = np.full(int(offsets[-1]), UNK_ID, dtype=np.int32)
    for i, text_ids in enumerate(per_text):
        if len(text_ids):
            ids[offsets[i] : offsets[i + 1]] = text_ids
    return ids, offsets


def _ascii_ids_beside(texts: list[str], vocab: dict[str, int], punctuation: str) -> Callable[[], list | None]:
    """Start the helper process on `texts`; the function returned waits for their ids (a list of int32
    arrays), or returns None when the helper could not start, failed or timed out."""
    try:
        proc = subprocess.Popen(
            HELPER_COMMAND, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
    except OSError:
        return lambda: None
    payload = pickle.dumps((texts, vocab, punctuation, UNK_ID), protocol=pickle.HIGHEST_PROTOCOL)
    out: dict[str, bytes] = {}

    def talk() -> None:  # in a thread: writing the texts blocks until the helper has read them
        try:
            out["stdout"] = proc.communicate(payload, timeout=HELPER_TIMEOUT_S)[0]
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()

    thread = threading.Thread(target=talk, daemon=True)
    thread.start()

    def wait() -> list | None:
        thread.join()
        if proc.returncode != 0 or "stdout" not in out:
            return None
        try:
            flat_bytes, length_bytes = pickle.loads(out["stdout"])
        except Exception:  # noqa: BLE001 - a garbled answer: split the texts here instead
            return None
        flat, lengths = np.frombuffer(flat_bytes, dtype=np.intc), np.frombuffer(length_bytes, dtype=np.int64)
        if len(lengths) != len(texts) or int(lengths.sum()) != len(flat):
            return None
        return np.split(flat.astype(np.int32, copy=False), np.cumsum(lengths)[:-1])

    return wait
