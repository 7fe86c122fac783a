"""`callbacks=ema`: validation, checkpoints and the test use the averaged weights; resuming keeps both."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import run_module
from test_cli import SMALL

EMA = ["callbacks=ema", "callbacks.ema.decay=0.9", "trainer.limit_train_batches=5", "trainer.log_every_n_steps=1"]


@pytest.fixture(scope="module")
def ema_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ema")
    proc = run_module(
        "seqsent.train",
        *SMALL,
        *EMA,
        "trainer.max_epochs=2",
        f"hydra.run.dir={root / 'run'}",
        env={"SEQSENT_CACHE_DIR": str(root / "cache")},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root / "run"


def test_checkpoint_holds_averaged_weights_and_the_raw_ones_apart(ema_run: Path) -> None:
    metrics = json.loads((ema_run / "metrics.json").read_text())
    ckpt = torch.load(metrics["best_ckpt"], weights_only=True)
    averaged, raw = ckpt["state_dict"], ckpt["current_model_state"]
    assert averaged.keys() == raw.keys()
    assert any(not torch.equal(averaged[k], raw[k]) for k in averaged)
    assert ckpt["averaging_state"]["n_averaged"].item() >= 5


def test_the_run_tests_the_averaged_weights_it_validated(ema_run: Path, tmp_path: Path) -> None:
    """Lightning's own callback reloads the raw weights for `trainer.test(ckpt_path=best)`; seqsent's does not,
    so the run's test metrics equal `seqsent.eval` of the checkpoint, which loads its (averaged) state_dict."""
    metrics = json.loads((ema_run / "metrics.json").read_text())
    proc = run_module(
        "seqsent.eval",
        f"ckpt_path={metrics['best_ckpt']}",
        *SMALL[:3],
        f"hydra.run.dir={tmp_path / 'ev'}",
        env={"SEQSENT_CACHE_DIR": str(ema_run.parent / "cache")},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    evaluated = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert evaluated["test/loss"] == pytest.approx(metrics["test/loss"], abs=1e-6)
    assert evaluated["test/acc"] == pytest.approx(metrics["test/acc"], abs=1e-6)


def test_resume_restores_the_raw_weights_and_the_average(ema_run: Path, tmp_path: Path) -> None:
    last = ema_run / "checkpoints" / "last.ckpt"
    before = torch.load(last, weights_only=True)
    proc = run_module(
        "seqsent.train",
        *SMALL,
        *EMA,
        "trainer.max_epochs=3",
        f"ckpt_path={last}",
        f"hydra.run.dir={tmp_path / 'resumed'}",
        env={"SEQSENT_CACHE_DIR": str(ema_run.parent / "cache")},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "resumed" / "metrics.json").read_text())
    assert metrics["epochs"] == 3 and metrics["global_steps"] == 15
    after = torch.load(tmp_path / "resumed" / "checkpoints" / "last.ckpt", weights_only=True)
    assert after["averaging_state"]["n_averaged"].item() == before["averaging_state"]["n_averaged"].item() + 5
