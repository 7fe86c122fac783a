"""`debug=`: fast_dev_run, limit, overfit (training accuracy reaches 1.0), profiler (its files in the run
dir), anomaly (autograd anomaly detection names the backward op that made a NaN); debug runs are marked
in metrics.json and labelled apart by seqsent.compare."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from helpers import run_module
from test_cli import SMALL

from seqsent.analysis.runs import load_runs

TESTS = Path(__file__).parent


def train(run_dir: Path, *args: str, code: int = 0) -> str:
    """Train into `run_dir` (the fault helpers of tests/faults.py importable); its stderr."""
    proc = run_module("seqsent.train", *SMALL, *args, f"hydra.run.dir={run_dir}", env={"PYTHONPATH": str(TESTS)})
    assert proc.returncode == code, proc.stderr[-3000:]
    return proc.stderr


def metrics_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def test_overfit_reaches_full_training_accuracy_and_is_labelled_a_debug_run(tmp_path: Path) -> None:
    run_dir = tmp_path / "overfit"
    train(run_dir, "debug=overfit", "trainer.max_epochs=20", "logger=csv")
    rows = [r for r in csv.DictReader((run_dir / "csv" / "metrics.csv").open()) if r["train/acc"]]
    assert len(rows) == 20 and float(rows[0]["train/acc"]) < 0.9
    assert float(rows[-1]["train/acc"]) >= 0.99  # the same 4 batches every epoch, learnt by heart
    metrics = metrics_of(run_dir)
    assert metrics["debug"] == "overfit" and metrics["global_steps"] == 20 * 4
    (run,) = load_runs(run_dir)
    assert run.arch == "bi-lstm debug=overfit"  # compare's tables never group it with real lstm runs


def test_fast_dev_run_runs_one_batch_per_stage(tmp_path: Path) -> None:
    train(tmp_path / "run", "debug=fast_dev_run")
    metrics = metrics_of(tmp_path / "run")
    assert metrics["debug"] == "fast_dev_run" and metrics["global_steps"] == 1 and "test/acc" in metrics
    assert metrics["last_ckpt"] is None and not list((tmp_path / "run").glob("checkpoints/*.ckpt"))  # none to resume


def test_limit_runs_few_batches_per_stage(tmp_path: Path) -> None:
    train(tmp_path / "run", "debug=limit")
    metrics = metrics_of(tmp_path / "run")
    assert metrics["debug"] == "limit" and (metrics["epochs"], metrics["global_steps"]) == (2, 10)


@pytest.mark.parametrize("profiler", ["SimpleProfiler", "PyTorchProfiler"])
def test_profiler_writes_its_report_into_the_run_dir(profiler: str, tmp_path: Path) -> None:
    train(tmp_path / "run", "debug=profiler", f"trainer.profiler._target_=lightning.pytorch.profilers.{profiler}")
    report = (tmp_path / "run" / "profiler" / "fit-profile.txt").read_text()
    assert "run_training_batch" in report
    assert (tmp_path / "run" / "profiler" / "test-profile.txt").is_file()
    assert metrics_of(tmp_path / "run")["debug"] == "profiler"


def test_anomaly_detection_names_the_backward_op_that_made_a_nan(tmp_path: Path) -> None:
    poison = ["+callbacks.poison._target_=faults.Poison", "+callbacks.poison.at_step=2"]
    stderr = train(tmp_path / "run", "debug=anomaly", *poison, code=1)
    assert "returned nan values in its 0th output" in stderr  # torch's anomaly mode, at step 2's backward
    assert "Traceback of forward call that caused the error" in stderr
