"""Helpers shared by the tests (imported as `helpers`: pytest puts tests/ on sys.path)."""

from __future__ import annotations

import csv
import os
import random
import subprocess
import sys
from pathlib import Path

# tiny synthetic runs use a small bigram table: the default one (262,144 rows) would dwarf them
TINY_BIGRAMS = "model.bigram_buckets=512"


def run_module(
    module: str, *args: str, env: dict | None = None, cwd: Path | None = None, timeout: int = 300
) -> subprocess.CompletedProcess:
    """`python -m module args...` in a subprocess with `env` added to this process's environment."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


def run_script(script: Path, *args: str, cwd: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """`python script args...` (a file under scripts/) in a subprocess."""
    return subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, timeout=timeout, cwd=cwd
    )


def load_error(path: Path | str, **kwargs) -> str:
    """The one-line `SeqsentError` message of setting up an `IMDBDataModule` on `path`."""
    import pytest

    from seqsent.data import IMDBDataModule
    from seqsent.errors import SeqsentError

    with pytest.raises(SeqsentError) as info:
        IMDBDataModule(path=str(path), vocab_size=50, **kwargs).setup()
    message = str(info.value)
    assert "\n" not in message
    return message


TOPICS = {"animal": "cat dog horse", "city": "paris rome oslo", "food": "bread rice soup"}


def write_topics(folder: Path, columns: tuple[str, str] = ("question", "topic"), names: bool = True) -> None:
    """`train.csv` and `test.csv` of three topics told apart by their words: a text and a label column
    (`columns`), labels the topic names (`names`) or their ids 0, 1, 2."""
    folder.mkdir(parents=True)
    rng = random.Random(0)
    filler = ["what", "where", "is", "the", "a", "of", "which", "name"]
    for split, n in (("train", 240), ("test", 60)):
        with open(folder / f"{split}.csv", "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(columns)
            for i in range(n):
                topic = list(TOPICS)[i % 3]
                words = rng.choices(filler, k=5) + rng.choices(TOPICS[topic].split(), k=2)
                rng.shuffle(words)
                writer.writerow([" ".join(words), topic if names else i % 3])


def execute_notebook(path: Path) -> tuple[list[dict], str]:
    """Run the notebook at `path` top to bottom in its own folder: every code cell's outputs, and their
    text (stream output and markdown) joined."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    text = "\n".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/markdown", "")) for o in outputs)
    return outputs, text
