"""`callbacks=ema`: validation, checkpoints and the test use the averaged weights; resuming keeps both."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import run_module
from test_cli import SMALL

EMA = ["callbacks=ema", "callbacks.ema.decay=0.9", "trainer.limit_train_batches=5", "trainer.log_every_n_steps=1"]


def run_ok(module: str, run_dir: Path, cache_root: Path, *args: str) -> dict:
    """Run `module` (train or eval) into `run_dir` with the cache under `cache_root`; its metrics.json."""
    proc = run_module(module, *args, f"hydra.run.dir={run_dir}", env={"SEQSENT_CACHE_DIR": str(cache_root / "cache")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.fixture(scope="module")
def ema_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ema")
    run_ok("seqsent.train", root / "run", root, *SMALL, *EMA, "trainer.max_epochs=2")
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
    evaluated = run_ok("seqsent.eval", tmp_path / "ev", ema_run.parent, f"ckpt_path={metrics['best_ckpt']}", *SMALL[:3])
    assert evaluated["test/loss"] == pytest.approx(metrics["test/loss"], abs=1e-6)
    assert evaluated["test/acc"] == pytest.approx(metrics["test/acc"], abs=1e-6)


def test_resume_restores_the_raw_weights_and_the_average(ema_run: Path, tmp_path: Path) -> None:
    last = ema_run / "checkpoints" / "last.ckpt"
    before = torch.load(last, weights_only=True)
    resumed = [*SMALL, *EMA, "trainer.max_epochs=3", f"ckpt_path={last}"]
    metrics = run_ok("seqsent.train", tmp_path / "resumed", ema_run.parent, *resumed)
    assert metrics["epochs"] == 3 and metrics["global_steps"] == 15
    after = torch.load(tmp_path / "resumed" / "checkpoints" / "last.ckpt", weights_only=True)
    assert after["averaging_state"]["n_averaged"].item() == before["averaging_state"]["n_averaged"].item() + 5
    # the final last.ckpt keeps the raw weights apart too (it is written after training ends, when the
    # average has been copied into the model), so 2 + 1 epochs end where 3 uninterrupted epochs do
    assert any(not torch.equal(before["state_dict"][k], before["current_model_state"][k]) for k in before["state_dict"])
    run_ok("seqsent.train", tmp_path / "three", ema_run.parent, *SMALL, *EMA, "trainer.max_epochs=3")
    three = torch.load(tmp_path / "three" / "checkpoints" / "last.ckpt", weights_only=True)
    for key in ("state_dict", "current_model_state"):
        for name, tensor in three[key].items():
            assert torch.equal(tensor, after[key][name]), (key, name)
