"""Long-range benchmark: the cue sits at the requested distance, labels balance, the sweep script runs."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from seqsent.data.long_range import LongRangeDataModule, make_long_range
from seqsent.data.synthetic import NEGATIVE, POSITIVE
from seqsent.data.vocab import tokenizer_from_json
from seqsent.errors import SeqsentError

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "long_range.py"


@pytest.mark.parametrize("distance", [0, 7, 40])
def test_generated_cues_sit_at_the_distance(distance: int) -> None:
    texts, labels = make_long_range(200, distance=distance, seed=3, n_cues=3, max_lead=4)
    assert sum(labels) == 100  # balanced
    cue_words = set(POSITIVE) | set(NEGATIVE)
    for text, label in zip(texts, labels):
        words = text.split()
        at = [len(words) - 1 - i for i, w in enumerate(words) if w in cue_words]  # steps before the end
        assert at == [distance + 2, distance + 1, distance]
        assert all(words[len(words) - 1 - d] in (POSITIVE if label else NEGATIVE) for d in at)
        assert distance + 3 <= len(words) <= distance + 3 + 4


def test_data_module_batches_keep_the_cue_at_the_distance(tmp_path: Path) -> None:
    dm = LongRangeDataModule(distance=30, n_train=120, n_test=40, vocab_size=1000, cache_dir=str(tmp_path))
    assert dm.max_len == 30 + 3 + 5  # fits the longest sequence
    dm.prepare_data()
    dm.setup("fit")
    vocab = tokenizer_from_json(dm.tokenizer_json).get_vocab()
    positive, negative = {vocab[w] for w in POSITIVE}, {vocab[w] for w in NEGATIVE}
    labels = []
    for loader in (dm.train_dataloader(), dm.test_dataloader()):
        for batch in loader:
            for tokens, length, label in zip(batch["tokens"], batch["lengths"], batch["labels"]):
                ids = tokens[-int(length) :].tolist()  # pre-padded: the review is at the end
                cues = [len(ids) - 1 - i for i, t in enumerate(ids) if t in positive | negative]
                assert cues == [32, 31, 30]
                assert ids[-31] in (positive if label == 1 else negative)
                labels.append(int(label))
    assert abs(sum(labels) / len(labels) - 0.5) < 0.1


def test_max_len_that_cuts_the_cue_is_an_error() -> None:
    with pytest.raises(SeqsentError, match="max_len"):
        LongRangeDataModule(distance=100, max_len=50)
    with pytest.raises(SeqsentError, match="truncation"):
        LongRangeDataModule(distance=100, max_len=104, truncation="post")
    assert LongRangeDataModule(distance=100, max_len=103).max_len == 103  # pre truncation drops only lead filler


def test_tiny_sweep_writes_table_csv_and_figure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("long_range_script", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = tmp_path / "out"
    argv = ["--distances", "2,8", "--cells", "rnn,lstm", "--seeds", "0,1", "--epochs", "1", "--n-train", "60"]
    summary = script.main([*argv, "--n-test", "20", "--hidden-size", "8", "--embed-dim", "8", "--out", str(out)])
    assert set(summary["test_acc"]) == {"rnn", "lstm"} and set(summary["test_acc"]["rnn"]) == {2, 8}
    assert set(summary["falls_to_chance_at"]) == {"rnn", "lstm"}
    for name in ("results.md", "results.csv", "long_range.png"):
        assert (out / name).is_file()
    assert len((out / "results.csv").read_text().splitlines()) == 1 + 2 * 2 * 2  # cells x distances x seeds
    table = (out / "results.md").read_text()
    assert "| distance | rnn | lstm |" in table and "/2) |" in table
    printed = capsys.readouterr().out
    assert "[8/8]" in printed and json.loads(printed[printed.index("{") :])["chance_threshold"] == 0.6
