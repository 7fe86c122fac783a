"""docs/results/vocab_study/vocab_study.py: the leaky vocabulary really holds test-only words, and only in its runs."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import pytest
import torch
from helpers import run_script

from seqsent.data.synthetic import make_reviews, write_parquet_dir
from seqsent.data.vocab import tokenizer_from_json

SCRIPT = Path(__file__).resolve().parents[1] / "docs" / "results" / "vocab_study" / "vocab_study.py"


def run_study(*args: str) -> subprocess.CompletedProcess:
    return run_script(SCRIPT, *args, timeout=600)


def vocabulary_of(run_dir: Path) -> dict[str, int]:
    ckpt = next((run_dir / "checkpoints").glob("epoch*.ckpt"))
    prep = torch.load(ckpt, map_location="cpu", weights_only=True)["seqsent_preprocessing"]
    return tokenizer_from_json(prep["tokenizer_json"]).get_vocab()


def test_the_train_and_test_vocabulary_holds_test_only_words(tmp_path: Path) -> None:
    test_texts, test_labels = make_reviews(100, seed=2)
    data = tmp_path / "imdb"
    test = ([t + " zyzzyva" for t in test_texts], test_labels)
    write_parquet_dir(data, {"train": make_reviews(200, seed=1), "test": test})
    out = tmp_path / "study"
    proc = run_study(
        "--data", str(data), "--cells", "lstm", "--seeds", "0", "--out", str(out),
        "--override", "trainer.max_epochs=1", "--override", "data.vocab_size=400",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out / "runs.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["cell"], r["vocab"]) for r in rows] == [("lstm", "train_part"), ("lstm", "train_and_test")]
    assert all(0.0 <= float(r["test_acc"]) <= 1.0 for r in rows)
    assert "zyzzyva" not in vocabulary_of(Path(rows[0]["run_dir"]))
    assert "zyzzyva" in vocabulary_of(Path(rows[1]["run_dir"]))
    summary = json.loads((out / "summary.json").read_text())["summary"]
    assert set(summary["lstm"]) == {"train_part", "train_and_test"}
    again = run_study("--data", str(data), "--out", str(out), "--work-dir", str(tmp_path / "other"))
    assert again.returncode == 2 and "runs.csv exists" in again.stderr  # an earlier study is never overwritten
    assert json.loads((out / "summary.json").read_text())["summary"] == summary


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--vocabs", "everything"], "error: --vocabs everything: use some of train_part,train_and_test"),
        (["--cells", "gpt"], "error: --cells gpt --seeds 0,1,2: use cells of rnn,lstm,gru, seeds as 0,1"),
        (["--seeds", "a"], "error: --seeds a: give whole numbers separated by commas, e.g. 0,1,2"),
    ],
)
def test_bad_arguments_are_one_line_errors(tmp_path: Path, args: list[str], message: str) -> None:
    proc = run_study("--data", str(tmp_path), *args)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [message]
