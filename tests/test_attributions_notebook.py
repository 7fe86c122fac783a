"""notebooks/rnn_vs_lstm_attributions.ipynb runs top to bottom on two tiny checkpoints (rnn, lstm on synthetic data)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from helpers import execute_notebook, run_module
from test_notebook import SWEEP_ARGS

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "rnn_vs_lstm_attributions.ipynb"


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The RNN's and the LSTM's checkpoint of a 2-job sweep made by `python -m seqsent.train -m ...`."""
    root = tmp_path_factory.mktemp("sweep")
    env = {"SEQSENT_OUTPUT_DIR": str(root / "multirun"), "SEQSENT_CACHE_DIR": str(root / "cache")}
    proc = run_module("seqsent.train", *SWEEP_ARGS, env=env, cwd=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = {cell: sorted(root.glob(f"multirun/*/*/*_{cell}_*/checkpoints/*.ckpt")) for cell in ("rnn", "lstm")}
    assert all(found.values()), found
    return {cell: paths[0] for cell, paths in found.items()}


def test_committed_notebook_has_no_outputs() -> None:
    nb = json.loads(NOTEBOOK.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code and all(c["outputs"] == [] and c["execution_count"] is None for c in code)


@pytest.mark.skipif(importlib.util.find_spec("captum") is None, reason="needs captum: pip install 'seqsent[explain]'")
def test_notebook_runs_on_two_checkpoints(checkpoints: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQSENT_RNN_CKPT", str(checkpoints["rnn"]))
    monkeypatch.setenv("SEQSENT_LSTM_CKPT", str(checkpoints["lstm"]))
    outputs, text = execute_notebook(NOTEBOOK)
    pages = "\n".join(str(o.get("data", {}).get("text/html", "")) for o in outputs)
    assert f"RNN   rnn        {checkpoints['rnn']}" in text and f"LSTM  lstm       {checkpoints['lstm']}" in text
    assert text.count("largest |delta|") == 2 and "over 13 reviews" in text
    assert "| RNN |" in text and "| LSTM |" in text  # the attribution mass by position
    assert "| positive | 0 | RNN |" in text and "| negative | 4 | LSTM |" in text  # the verdict probe
    assert pages.count('class="review"') == 2 * 7 and "superb</span>" in pages  # side by side
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 2
