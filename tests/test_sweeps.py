"""Hydra multirun: one directory per job named by architecture and seed, failures recorded and
isolated, TensorBoard HPARAMS, the Optuna search and the parallel launcher."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import TINY_BIGRAMS
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from seqsent.utils import config_dir, register_resolvers

TINY = [
    "data=synthetic",
    "data.n_train=160",
    "data.n_test=60",
    "data.vocab_size=150",
    "model.encoder.hidden_size=8",
    TINY_BIGRAMS,
    "model.embed_dim=8",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
]


def multirun(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, Path]:
    """A tiny sweep over `args` (each replacing the `TINY` setting of its key; a sweep over encoders
    drops the recurrent encoder's size)."""
    env = {**os.environ, "SEQSENT_OUTPUT_DIR": str(tmp_path / "out"), "SEQSENT_CACHE_DIR": str(tmp_path / "cache")}
    swept = {a.split("=")[0] for a in args}
    if "model/encoder" in swept:
        swept.add("model.encoder.hidden_size")
    proc = subprocess.run(
        [sys.executable, "-m", "seqsent.train", "-m", *args, *(t for t in TINY if t.split("=")[0] not in swept)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=tmp_path,
    )
    sweeps = sorted((tmp_path / "out").glob("*/*"))
    assert len(sweeps) == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc, sweeps[0]


def test_sweep_names_jobs_and_survives_a_failing_job(tmp_path: Path) -> None:
    proc, sweep = multirun(tmp_path, "model=rnn,gru", "model.lr=1e-3,-1")
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert jobs == ["0_rnn_seed42", "1_rnn_seed42", "2_gru_seed42", "3_gru_seed42"]
    assert proc.returncode != 0  # Hydra reports the failures when the sweep ends
    for ok in ("0_rnn_seed42", "2_gru_seed42"):
        metrics = json.loads((sweep / ok / "metrics.json").read_text())
        assert "test/acc" in metrics
    for bad in ("1_rnn_seed42", "3_gru_seed42"):
        assert not (sweep / bad / "metrics.json").exists()
        assert "learning rate must be positive" in (sweep / bad / "error.txt").read_text()
    records = [json.loads(line) for line in (sweep / "jobs.jsonl").read_text().splitlines()]
    assert [r["status"] for r in records] == ["completed", "failed", "completed", "failed"]
    assert "[sweep] 1_rnn_seed42: FAILED" in proc.stdout


def test_sweep_over_every_encoder_names_each_job_after_its_encoder(tmp_path: Path) -> None:
    """`-m model/encoder=...`: one recipe, every encoder trained and tested, each job named by its encoder."""
    names = ["rnn", "lstm", "gru", "cnn", "transformer", "nbow"]
    proc, sweep = multirun(tmp_path, f"model/encoder={','.join(names)}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = sorted((p.name for p in sweep.iterdir() if p.is_dir()), key=lambda job: int(job.split("_")[0]))
    assert jobs == [f"{i}_{name}_seed42" for i, name in enumerate(names)]
    for job in jobs:
        assert 0.0 <= json.loads((sweep / job / "metrics.json").read_text())["test/acc"] <= 1.0


def test_tensorboard_hparams_mark_what_differs_without_placeholder_points(tmp_path: Path) -> None:
    """Each run logs its config as an HPARAMS session and no experiment record, so TensorBoard derives
    the table from the sessions and marks the swept value as differing; the metrics the table shows
    have only real points (no 0.0 placeholder at step 0)."""
    proc, sweep = multirun(tmp_path, "model.encoder.hidden_size=8,16")
    assert proc.returncode == 0, proc.stderr[-2000:]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import metadata
    from tensorboard.plugins.hparams.backend_context import Context

    sessions = {}
    for job in ("0_lstm_seed42", "1_lstm_seed42"):
        acc = EventAccumulator(str(sweep / job / "tensorboard"))
        acc.Reload()
        for tag in ("val/acc_best", "test/acc", "time/train_seconds"):
            points = [(e.step, e.value) for e in acc.Scalars(tag)]
            assert len(points) == 1 and points[0][0] > 0, (job, tag, points)
        sessions[job] = acc.PluginTagToContent(metadata.PLUGIN_NAME)
        assert set(sessions[job]) == {metadata.SESSION_START_INFO_TAG}
    experiment = Context(None).experiment_from_metadata(None, "", False, sessions, None)
    hidden = next(h for h in experiment.hparam_infos if h.name == "model/encoder/hidden_size")
    assert (hidden.domain_interval.min_value, hidden.domain_interval.max_value) == (8, 16)
    assert [h.name for h in experiment.hparam_infos if h.differs] == ["model/encoder/hidden_size"]


def test_a_vocabulary_in_the_config_is_logged_as_its_length_and_hash() -> None:
    from omegaconf import OmegaConf

    from seqsent.builders import log_hparams

    class Recorder:
        params: dict = {}

        def log_hyperparams(self, params: dict) -> None:
            Recorder.params = params

    vocab = '{"model": "' + "x" * 5000 + '"}'
    log_hparams([Recorder()], OmegaConf.create({"data": {"tokenizer_json": vocab, "max_len": 200}}))
    logged = Recorder.params
    assert logged["data/max_len"] == 200
    assert logged["data/tokenizer_json"].startswith(f"<{len(vocab)} chars, sha256 ")


@pytest.mark.parametrize("override", ["hydra/launcher=local_parallel", "hparams_search=lstm_optuna"])
def test_sweep_plugins_compose(override: str) -> None:
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=[override], return_hydra_config=True)
    target = cfg.hydra.launcher._target_ if "launcher" in override else cfg.hydra.sweeper._target_
    assert target.split(".")[-1] in {"JoblibLauncher", "OptunaSweeper"}
    for key in cfg.hydra.sweeper.get("params") or {}:  # the search's settings exist in the config
        assert OmegaConf.select(cfg, key, default="missing") != "missing", key


@pytest.mark.slow
def test_optuna_search_runs_three_trials(tmp_path: Path) -> None:
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    proc, sweep = multirun(tmp_path, "hparams_search=lstm_optuna", "hydra.sweeper.n_trials=3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Best parameters" in proc.stdout + proc.stderr
    done = [p for p in sweep.iterdir() if (p / "metrics.json").is_file()]
    assert len(done) == 3
    configs = {(p / ".hydra" / "overrides.yaml").read_text() for p in done}
    assert len(configs) == 3  # three different trials


@pytest.mark.slow
def test_parallel_launcher_with_dataloader_workers(tmp_path: Path) -> None:
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    proc, sweep = multirun(tmp_path, "hydra/launcher=local_parallel", "model=rnn,lstm", "data.num_workers=1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(list(sweep.glob("*/metrics.json"))) == 2
