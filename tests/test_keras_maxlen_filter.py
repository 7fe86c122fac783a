"""docs/results/keras_maxlen/keras_maxlen_filter.py: keeps exactly the reviews Keras' load_data(maxlen=N) keeps."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pyarrow.parquet as pq
from helpers import run_script

from seqsent.data.sources import load_splits
from seqsent.data.synthetic import write_parquet_dir

SCRIPT = Path(__file__).resolve().parents[1] / "docs" / "results" / "keras_maxlen" / "keras_maxlen_filter.py"
spec = importlib.util.spec_from_file_location("keras_maxlen_filter", SCRIPT)
kmf = importlib.util.module_from_spec(spec)
spec.loader.exec_module(kmf)


def test_keras_length_counts_words_br_tags_and_the_start_id() -> None:
    assert kmf.keras_length("Great film!") == 3
    assert kmf.keras_length("I don't like it.<br /><br />At all") == 1 + 4 + 2 + 2
    assert kmf.keras_length("") == 1


def test_filter_keeps_reviews_under_maxlen_ids_and_refuses_an_existing_out(tmp_path: Path) -> None:
    texts = ["good", "a b c", "a b c d", "one two three four five six", "bad<br />movie"]
    labels = [1, 0, 1, 0, 0]
    data = tmp_path / "imdb"
    write_parquet_dir(data, {"train": (texts, labels), "test": (texts[::-1], labels[::-1])})
    out = tmp_path / "short"
    proc = run_script(SCRIPT, "--data", str(data), "--out", str(out), "--maxlen", "5")
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    # ids: good 2, "a b c" 4, "a b c d" 5, six words 7, "bad br movie" 4; kept: fewer than 5
    kept = {"good": 1, "a b c": 0, "bad<br />movie": 0}
    assert summary["train"] == {"reviews": 3, "of": 5, "positive": 1}
    table = pq.read_table(out / "train-00000-of-00001.parquet").to_pydict()
    assert dict(zip(table["text"], table["label"])) == kept
    assert sorted(load_splits(str(out), ("train", "test"))["test"].texts) == sorted(kept)
    again = run_script(SCRIPT, "--data", str(data), "--out", str(out), "--maxlen", "5")
    assert again.returncode == 2 and "exists" in again.stderr and again.stderr.count("\n") == 1
    assert dict(zip(*pq.read_table(out / "train-00000-of-00001.parquet").to_pydict().values())) == kept


def test_data_errors_name_the_scripts_own_option(tmp_path: Path) -> None:
    proc = run_script(SCRIPT, "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2 and not (tmp_path / "out").exists()
    assert proc.stderr.strip().endswith("or --data=/path/to/imdb (parquet files or aclImdb/)")
