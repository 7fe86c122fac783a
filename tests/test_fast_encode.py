"""`vocab.encode`'s Python path for ASCII reviews gives exactly the ids the tokenizer gives."""

from __future__ import annotations

import random
import string
import sys

import numpy as np
import pytest
from conftest import real_imdb_dir
from tokenizers import Tokenizer, normalizers

from seqsent.data import vocab
from seqsent.data.sources import load_splits


def reference_encode(tok: Tokenizer, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """What `encode` computed before the fast path: `tokenizers` for every review."""
    per_text = [enc.ids or [vocab.UNK_ID] for enc in tok.encode_batch_fast(texts, add_special_tokens=False)]
    offsets = np.concatenate([[0], np.cumsum([len(ids) for ids in per_text])])
    return np.concatenate([np.asarray(ids, dtype=np.int32) for ids in per_text]), offsets


def tricky_texts() -> list[str]:
    ascii_chars = [chr(c) for c in range(128)]
    texts = [*ascii_chars, *(f"Ab{c}cD 9_{c}{c}x" for c in ascii_chars)]
    texts += [
        "",
        " \t\n\x0b\x0c\r",
        "\x1c\x1d\x1e\x1f",  # Python's \s takes these, Oniguruma's does not
        "Great!<br /><br />Loved it... don't miss",
        "<br\n/>multi-line tag<a<b>> <<x>> <12345678901234567890> <123456789012345678901>",
        "a <pad> b <unk> c <PAD> <Unk>",  # special tokens' texts: the tokenizer extracts these first
        "café naïve Σίσυφος ΣΑΣ straße İstanbul",  # not ASCII: tokenizers encodes these
        "__init__ x_y 3.14 $5,000 :-) ?!?! ...",
    ]
    rng = random.Random(0)
    alphabet = string.printable + "<<>>///\x1c\x00"
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80))) for _ in range(600)]
    return texts


@pytest.mark.parametrize("punctuation", vocab.PUNCTUATION)
def test_fast_path_equals_the_tokenizer_on_every_ascii_character(punctuation: str) -> None:
    texts = tricky_texts()
    tok = vocab.train_tokenizer(texts, vocab_size=300, punctuation=punctuation)
    assert vocab._fast_rules(tok) == (punctuation, [vocab.PAD, vocab.UNK])  # the fast path is taken
    ids, offsets = vocab.encode(tok, texts)
    ref_ids, ref_offsets = reference_encode(tok, texts)
    assert np.array_equal(offsets, ref_offsets) and np.array_equal(ids, ref_ids)
    assert ids.dtype == np.int32 and offsets.dtype == np.int64
    pad_review = texts.index("a <pad> b <unk> c <PAD> <Unk>")  # the special token's id, as tokenizers gives it
    assert vocab.PAD_ID in ids[offsets[pad_review] : offsets[pad_review + 1]]


def test_other_tokenizers_take_the_tokenizers_path() -> None:
    texts = tricky_texts()
    tok = vocab.train_tokenizer(texts, vocab_size=300)
    cased = Tokenizer.from_str(tok.to_str())
    cased.normalizer = normalizers.Replace("<br />", " ")  # keeps case: not seqsent's rules
    assert vocab._fast_rules(cased) is None
    ids, offsets = vocab.encode(cased, texts)
    ref_ids, ref_offsets = reference_encode(cased, texts)
    assert np.array_equal(offsets, ref_offsets) and np.array_equal(ids, ref_ids)
    assert not np.array_equal(ids, vocab.encode(tok, texts)[0])  # the rules do differ


REAL = real_imdb_dir()


@pytest.mark.real_data
@pytest.mark.skipif(REAL is None, reason="set SEQSENT_IMDB_DIR to the IMDB parquet directory")
def test_fast_path_equals_the_tokenizer_on_all_of_imdb() -> None:
    raw = load_splits(str(REAL), ("train", "test"))
    tok = vocab.train_tokenizer(raw["train"].texts[:20_000], vocab_size=10_000)
    for split in ("train", "test"):
        ids, offsets = vocab.encode(tok, raw[split].texts)
        ref_ids, ref_offsets = reference_encode(tok, raw[split].texts)
        assert np.array_equal(offsets, ref_offsets) and np.array_equal(ids, ref_ids), split


def test_tokenizers_the_fast_path_cannot_copy_take_the_tokenizers_path() -> None:
    """Added tokens beyond the specials, truncation or padding in the JSON, `<unk>` elsewhere than id 1:
    `tokenizers` alone encodes then, so the ids stay the tokenizer's."""
    texts = [*tricky_texts(), "ZZZ zzz great movie", "xyz great"]
    base = vocab.train_tokenizer(texts, vocab_size=300)
    added = Tokenizer.from_str(base.to_str())
    added.add_special_tokens(["zzz"])
    truncating = Tokenizer.from_str(base.to_str())
    truncating.enable_truncation(2)
    padding = Tokenizer.from_str(base.to_str())
    padding.enable_padding()
    for tok in (added, truncating, padding):
        assert vocab._fast_rules(tok) is None
        ids, offsets = vocab.encode(tok, texts)
        ref_ids, ref_offsets = reference_encode(tok, texts)
        assert np.array_equal(offsets, ref_offsets) and np.array_equal(ids, ref_ids)


def test_the_helper_process_splits_half_and_a_failing_one_changes_nothing(monkeypatch) -> None:
    """From HELPER_MIN_TEXTS ASCII reviews on, a helper process (`python -m seqsent.ascii_words`) splits
    half of them; if it cannot run, this process splits them: the ids are the same either way."""
    texts = tricky_texts()
    tok = vocab.train_tokenizer(texts, vocab_size=300)
    ref_ids, ref_offsets = reference_encode(tok, texts)
    monkeypatch.setattr(vocab, "HELPER_MIN_TEXTS", 10)
    started = []
    real = vocab._ascii_ids_beside

    def spy(*args):
        started.append(len(args[0]))
        return real(*args)

    monkeypatch.setattr(vocab, "_ascii_ids_beside", spy)
    ids, offsets = vocab.encode(tok, texts)
    assert started and started[0] >= 300  # the helper took about half of the ASCII reviews
    assert np.array_equal(offsets, ref_offsets) and np.array_equal(ids, ref_ids)
    junk = "import sys; sys.stdout.buffer.write(b'junk')"
    for broken in (
        ["/nonexistent/python"],
        [sys.executable, "-c", "import sys; sys.exit(3)"],
        [sys.executable, "-c", junk],
    ):
        monkeypatch.setattr(vocab, "HELPER_COMMAND", broken)
        ids, offsets = vocab.encode(tok, texts)
        assert np.array_equal(offsets, ref_offsets) and np.array_equal(ids, ref_ids)
