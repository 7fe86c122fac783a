"""notebooks/rnn_vs_lstm.ipynb runs top to bottom against a tiny real sweep (rnn, lstm on synthetic data)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import TINY_BIGRAMS, execute_notebook, run_module

from seqsent.compare import load_runs, summarize

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "rnn_vs_lstm.ipynb"
SWEEP_ARGS = [
    "-m",
    "experiment=seed_lstm",
    "model=rnn,lstm",
    "data=synthetic",
    "data.n_train=200",
    "data.n_test=80",
    "data.vocab_size=200",
    "model.encoder.hidden_size=16",
    TINY_BIGRAMS,
    "model.embed_dim=16",
    "trainer.max_epochs=2",
    "trainer.limit_train_batches=3",
]


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 2-job sweep made by `python -m seqsent.train -m ...` (about 10 s on 2 CPU cores)."""
    root = tmp_path_factory.mktemp("sweep")
    env = {"SEQSENT_OUTPUT_DIR": str(root / "multirun"), "SEQSENT_CACHE_DIR": str(root / "cache")}
    proc = run_module("seqsent.train", *SWEEP_ARGS, env=env, cwd=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sweeps = [p for p in (root / "multirun").glob("*/*") if p.is_dir()]
    assert len(sweeps) == 1, sweeps
    return sweeps[0]


def test_committed_notebook_has_no_outputs() -> None:
    nb = json.loads(NOTEBOOK.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code and all(c["outputs"] == [] and c["execution_count"] is None for c in code)


def test_compare_reads_a_real_sweep(sweep_dir: Path) -> None:
    runs = load_runs(sweep_dir)
    assert [r.arch for r in runs] == ["rnn", "lstm"] and all(r.completed for r in runs)
    assert all(len(r.val_curve) == 2 and r.best_ckpt is not None for r in runs)
    assert [e for e, _ in runs[0].val_curve] == [1.0, 2.0]
    summaries = summarize(runs)
    assert [(s.arch, s.completed, s.test_acc.n, s.test_acc.std) for s in summaries] == [
        ("rnn", 1, 1, None),
        ("lstm", 1, 1, None),
    ]


def test_notebook_runs_against_the_sweep(sweep_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQSENT_SWEEP_DIR", str(sweep_dir))
    outputs, text = execute_notebook(NOTEBOOK)
    assert str(sweep_dir) in text
    assert "| rnn | 1 | 0 |" in text and "| lstm | 1 | 0 |" in text
    assert "Absolutely wonderful" in text and text.count("val/acc_best") >= 2
    assert any("image/png" in o.get("data", {}) for o in outputs)
