"""hydra/launcher=slurm: the composed launcher config and the sbatch script it submits (rendered by
the real hydra-submitit launcher and submitit, with a stand-in `srun` and nothing submitted)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from seqsent.utils import config_dir, register_resolvers

pytest.importorskip("hydra_plugins.hydra_submitit_launcher")

TARGET = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
SWEEP = ["hydra/launcher=slurm", "hydra.launcher.partition=gpu", "trainer=ddp", "trainer.devices=4"]


def composed(overrides: list[str], tmp_path: Path) -> DictConfig:
    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(
            "train",
            [*overrides, f"hydra.sweep.dir={tmp_path / 'sweep'}", f"hydra.runtime.output_dir={tmp_path}"],
            return_hydra_config=True,
        )
    HydraConfig.instance().set_config(cfg)
    return cfg


def test_launcher_sizes_jobs_from_the_trainer(tmp_path: Path) -> None:
    cfg = composed([*SWEEP, "trainer.num_nodes=2"], tmp_path)
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert launcher["_target_"] == TARGET
    assert (launcher["tasks_per_node"], launcher["gpus_per_node"], launcher["nodes"]) == (4, 4, 2)
    assert launcher["partition"] == "gpu" and launcher["timeout_min"] > 0
    assert launcher["additional_parameters"]["signal"] == f"USR1@{launcher['signal_delay_s']}"
    assert cfg.trainer.strategy == "ddp" and cfg.trainer.use_distributed_sampler is False


def test_launcher_without_ddp_runs_one_task(tmp_path: Path) -> None:
    launcher = composed(["hydra/launcher=slurm"], tmp_path).hydra.launcher
    assert (launcher.tasks_per_node, launcher.nodes) == (1, 1)  # trainer=default has no num_nodes


class Submitted(Exception):
    """Raised instead of submitting; carries the executor that would have submitted."""

    def __init__(self, executor: Any):
        super().__init__("not submitted")
        self.executor = executor


def test_sbatch_script_asks_slurm_for_what_lightning_checks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import submitit

    bin_dir = tmp_path / "bin"  # submitit's SLURM executor wants an `srun` on PATH
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")
    (bin_dir / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    def capture(executor: Any, *args: Any, **kwargs: Any) -> None:
        raise Submitted(executor)

    monkeypatch.setattr(submitit.AutoExecutor, "map_array", capture)
    cfg = composed([*SWEEP, "trainer.num_nodes=2", "hydra.launcher.timeout_min=90"], tmp_path)
    launcher = instantiate(cfg.hydra.launcher)
    launcher.setup(hydra_context=None, task_function=None, config=cfg)
    with pytest.raises(Submitted) as caught:
        launcher.launch([["model=rnn"], ["model=lstm"]], initial_job_idx=0)
    script = caught.value.executor._executor._make_submission_file_text("python -u -m submitit.core._submit", "0")
    flags = {line.split()[1] for line in script.splitlines() if line.startswith("#SBATCH")}
    # Lightning's SLURMEnvironment: --ntasks-per-node must equal trainer.devices, --nodes trainer.num_nodes;
    # SIGUSR1 before the time limit triggers its checkpoint + requeue
    expected = {"--ntasks-per-node=4", "--gpus-per-node=4", "--nodes=2", "--partition=gpu", "--time=90"}
    assert expected <= flags, script
    assert "--signal=USR1@120" in flags and not any(f.startswith("--signal=USR2") for f in flags)
    assert "\nsrun " in script  # the tasks are started by srun, as Lightning expects
    assert (tmp_path / "sweep").is_dir()


@pytest.mark.parametrize("procid", ["0", "3"])
def test_sweep_report_records_each_job_once(procid: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hydra.core.utils import JobReturn, JobStatus

    from seqsent.sweep import SweepReport

    monkeypatch.setenv("SLURM_PROCID", procid)  # every SLURM task of a job runs Hydra's job callbacks
    hydra_cfg = {"mode": "RunMode.MULTIRUN", "runtime": {"output_dir": str(tmp_path / "0")}}
    job = JobReturn(hydra_cfg=OmegaConf.create({"hydra": hydra_cfg}), status=JobStatus.COMPLETED)
    job.return_value = 0.5
    SweepReport().on_job_end(OmegaConf.create({"optimized_metric": "val/acc_best"}), job)
    assert (tmp_path / "jobs.jsonl").is_file() == (procid == "0")
