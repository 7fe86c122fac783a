"""`callbacks=early_stopping` and `callbacks=rich_summary`, combined with the other callbacks groups as a
list (`callbacks=[ema,early_stopping]`); an early-stopped run is finished (its resume is refused); and
every option of the new groups (logger, callbacks, debug) composes with every model, data and experiment."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from helpers import run_module
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from test_cli import SMALL
from test_configs import composed, options

from seqsent.builders import build_loggers, instantiate_group
from seqsent.utils import config_dir, register_resolvers

# patience 1 and a gain of 1.0 (all of the accuracy) to count: training stops at the second validation
STOP_EARLY = ["callbacks.early_stopping.patience=1", "callbacks.early_stopping.min_delta=1.0"]
COMBINED = ["callbacks=[ema,rich_summary,early_stopping]", "trainer.limit_train_batches=3"]


@pytest.fixture(scope="module")
def stopped(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A run with EMA, the rich summary and early stopping: its dir and standard output."""
    root = tmp_path_factory.mktemp("stopped")
    args = [*SMALL, *COMBINED, *STOP_EARLY, "trainer.max_epochs=5", f"hydra.run.dir={root / 'run'}"]
    proc = run_module("seqsent.train", *args, env={"SEQSENT_CACHE_DIR": str(root / "cache")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root / "run", proc.stdout


def test_early_stopping_ends_the_run_with_ema_still_averaging(stopped: tuple[Path, str]) -> None:
    run_dir, _ = stopped
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and metrics["global_steps"] == 6  # of max_epochs=5
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["averaging_state"]["n_averaged"].item() == 6  # EMA averaged every step
    assert last["seqsent_finished"]["stopped_early"] == {"monitor": "val/acc", "patience": 1}


def test_rich_summary_prints_the_layer_table(stopped: tuple[Path, str]) -> None:
    _, stdout = stopped
    assert "TextClassifierNet" in stdout and "Total params" in stdout


def test_an_early_stopped_run_refuses_resume_naming_early_stopping(stopped: tuple[Path, str]) -> None:
    """Resumed under the same limits, an early-stopped run would stop again at once: refused. (A higher
    trainer.max_epochs trains on, as for any finished run: test_reliability_runs.)"""
    run_dir, _ = stopped
    last = run_dir / "checkpoints" / "last.ckpt"
    before = sorted(p.name for p in run_dir.rglob("*"))
    proc = run_module("seqsent.train", *SMALL, *COMBINED, *STOP_EARLY, "trainer.max_epochs=5", f"ckpt_path={last}")
    assert proc.returncode == 2
    assert f"error: {last} was ended by early stopping after 2 epochs (on val/acc, patience 1)" in proc.stderr
    assert proc.stderr.count("\n") == 1 and "callbacks.early_stopping.patience" in proc.stderr
    assert sorted(p.name for p in run_dir.rglob("*")) == before  # the refused resume left the run as it was


def test_callbacks_groups_combine_as_a_list(tmp_path: Path) -> None:
    cfg = composed("train", ["callbacks=[diagnostics,ema,early_stopping]", f"hydra.runtime.output_dir={tmp_path}"])
    names = list(cfg.callbacks)
    assert {"gradient_flow", "ema", "early_stopping", "model_checkpoint"} <= set(names)
    assert len(names) == len(set(names))  # the shared default callbacks once


NEW = [("logger", o) for o in ("csv", "mlflow", "wandb", "many")]
NEW += [("callbacks", o) for o in ("early_stopping", "rich_summary", "[ema,early_stopping]")]
NEW += [("debug", o) for o in options("debug")]
CHOICES = [(g, o) for g in ("model", "data", "experiment") for o in options(g)]


@pytest.mark.parametrize("group,option", NEW)
def test_every_new_option_composes_with_every_model_data_and_experiment(group: str, option: str, tmp_path) -> None:
    if option in ("mlflow", "wandb") and not importlib.util.find_spec(option):
        pytest.skip(f"the {option} extra is not installed")
    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        for other, choice in CHOICES:
            overrides = [f"{group}={option}", f"{other}={choice}", f"hydra.runtime.output_dir={tmp_path}"]
            cfg = compose("train", overrides=overrides, return_hydra_config=True)
            HydraConfig.instance().set_config(cfg)
            check_composed(cfg, group, option, f"{other}={choice}")


def check_composed(cfg: DictConfig, group: str, option: str, choice: str) -> None:
    """Every interpolation of the job's config resolves, and the new group's entries build."""
    job = {k: v for k, v in cfg.items() if k != "hydra"}
    plain = {k: OmegaConf.to_container(v, resolve=True) for k, v in job.items() if OmegaConf.is_config(v)}
    assert plain["model"]["vocab_size"] == plain["data"]["vocab_size"], choice
    if group == "callbacks":
        assert len(instantiate_group(cfg.callbacks)) == len(cfg.callbacks), choice
    if group == "logger" and choice == "{}={}".format(*CHOICES[0]):  # the loggers use no model/data setting
        assert len(build_loggers(cfg.logger, {"run_name": cfg.run_name})) == len(cfg.logger), choice
    if group == "debug":
        assert plain["debug"]["name"] == option and plain["trainer"] != {}, choice
