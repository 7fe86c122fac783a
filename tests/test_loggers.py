"""`logger=`: tensorboard, csv, mlflow (local sqlite store), wandb (offline), many; the run's tags (sweep,
job, overrides) reach every logger; a logger whose package is missing names the extra to install."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import yaml
from helpers import run_module
from omegaconf import OmegaConf
from test_cli import SMALL
from test_configs import composed

from seqsent.builders import build_loggers
from seqsent.errors import SeqsentError

OPTIONAL = ("mlflow", "wandb")
LOGGERS = ["tensorboard", "csv", *(name for name in OPTIONAL if importlib.util.find_spec(name))]
SWEEP = "tagged_sweep"


@pytest.fixture(scope="module")
def jobs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The two jobs of a sweep (one process, one job after the other), logging to every logger installed
    here at once."""
    root = tmp_path_factory.mktemp("loggers")
    proc = run_module(
        "seqsent.train",
        "-m",
        f"logger=[{','.join(LOGGERS)}]",
        *SMALL,
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=3",
        "seed=0,1",
        f"hydra.sweep.dir={root / SWEEP}",
        env={"SEQSENT_CACHE_DIR": str(root / "cache"), "WANDB_SILENT": "true"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (root / "stdout.txt").write_text(proc.stdout)
    run_dirs = sorted((root / SWEEP).glob("[01]_*"))
    assert [json.loads((d / "metrics.json").read_text())["epochs"] for d in run_dirs] == [1, 1]
    return run_dirs


@pytest.fixture
def job(jobs: list[Path]) -> Path:
    return jobs[0]


def assert_tagged(tags: dict) -> None:
    assert tags["sweep"] == SWEEP and tags["job"] == "0" and tags["run_name"] == "lstm"
    assert "trainer.limit_train_batches=3" in tags["overrides"]


def test_tensorboard_writes_events_and_the_tags_as_text_and_in_hparams_yaml(job: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    hparams = yaml.safe_load((job / "tensorboard" / "hparams.yaml").read_text())
    assert_tagged({k.removeprefix("tags/"): v for k, v in hparams.items() if k.startswith("tags/")})
    events = EventAccumulator(str(job / "tensorboard"), size_guidance={"tensors": 0}).Reload()
    (text,) = [t.tensor_proto.string_val[0].decode() for t in events.Tensors("tags/text_summary")]
    assert f"sweep: {SWEEP}" in text and "job: 0" in text and "trainer.limit_train_batches=3" in text


def test_csv_writes_metrics_rows_and_the_tags_as_hparams(job: Path) -> None:
    header = (job / "csv" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"val/acc", "train/loss", "test/acc", "epoch", "step"} <= set(header)
    hparams = yaml.safe_load((job / "csv" / "hparams.yaml").read_text())
    assert hparams["model/encoder/hidden_size"] == 16
    assert_tagged({k.removeprefix("tags/"): v for k, v in hparams.items() if k.startswith("tags/")})


def test_mlflow_writes_a_local_store_with_tags_params_and_metrics(job: Path) -> None:
    mlflow = pytest.importorskip("mlflow")
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{job / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("seqsent").experiment_id])
    assert_tagged(run.data.tags)
    assert run.info.run_name == "lstm" and run.data.params["tags/sweep"] == SWEEP
    assert {"val/acc", "test/acc"} <= set(run.data.metrics)


def test_wandb_writes_an_offline_run_per_job_with_the_sweep_as_group_and_tags(jobs: list[Path]) -> None:
    """Each job of the sweep its own W&B run (W&B reuses a run still open in the process)."""
    pytest.importorskip("wandb")
    for number, job in enumerate(jobs):
        (record,) = (job / "wandb").glob("offline-run-*/run-*.wandb")
        data = record.read_bytes()  # W&B's protobuf record of the run: the strings are stored as written
        for text in (f"sweep={SWEEP}", f"job={number}", "run_name=lstm", "val/acc", "test/acc"):
            assert text.encode() in data, (number, text)


def test_the_summary_says_where_each_logger_wrote_and_how_to_look(jobs: list[Path]) -> None:
    stdout = (jobs[0].parents[1] / "stdout.txt").read_text()
    job = jobs[0]
    assert f"tensorboard --logdir {job}" in stdout and f"csv: {job / 'csv' / 'metrics.csv'}" in stdout
    if "mlflow" in LOGGERS:
        assert f"mlflow ui --backend-store-uri sqlite:///{job / 'mlflow.db'}" in stdout
    if "wandb" in LOGGERS:
        (run,) = (job / "wandb").glob("offline-run-*")
        assert f"wandb sync {run}" in stdout


def test_many_is_tensorboard_and_csv(tmp_path: Path) -> None:
    cfg = composed("train", ["logger=many", f"hydra.runtime.output_dir={tmp_path}"])
    assert set(cfg.logger) == {"tensorboard", "csv"}


def missing_package(**kwargs: object) -> None:
    """A logger whose package is not installed, as Lightning's loggers report it."""
    raise ModuleNotFoundError("Requirement 'wandb>=0.12.10' not met")


def test_a_missing_logger_package_names_the_extra() -> None:
    group = OmegaConf.create({"wandb": {"_target_": f"{__name__}.missing_package"}})
    with pytest.raises(SeqsentError) as info:
        build_loggers(group, {})
    assert str(info.value) == "logger=wandb needs the wandb extra: pip install seqsent[wandb]"
