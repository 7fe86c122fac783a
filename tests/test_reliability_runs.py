"""Reliability through the real entry points: a finished run keeps its final state and cannot be
resumed by mistake, resuming checks the data settings, gradflow never overwrites, training limits
that train nothing, an unusable run directory and Ctrl+C each end in one line."""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path

import pytest
import torch
from helpers import TINY_BIGRAMS, run_module
from test_diagnostics import gradflow_config

from seqsent.gradflow import gradflow
from seqsent.reliability import FINISHED_KEY

TESTS = Path(__file__).parent
RUN = [
    "data=synthetic",
    "data.n_train=240",
    "data.n_test=80",
    "data.vocab_size=200",
    "data.batch_size=16",
    "model.encoder.hidden_size=8",
    TINY_BIGRAMS,
    "model.embed_dim=8",
    "model.scheduler=none",
    "trainer.limit_train_batches=10",
]
# Stopped early after epoch 2 (step 20): no val/acc can beat the first by 1.0. The step checkpoint
# (every 7 steps) last saved at step 14, and the best-model checkpoint keeps no last.ckpt here.
STOPPED_EARLY = [
    "trainer.max_epochs=5",
    "callbacks.step_checkpoint.every_n_train_steps=7",
    "callbacks.model_checkpoint.save_last=false",
    "+callbacks.early_stop._target_=lightning.pytorch.callbacks.EarlyStopping",
    "+callbacks.early_stop.monitor=val/acc",
    "+callbacks.early_stop.mode=max",
    "+callbacks.early_stop.patience=0",
    "+callbacks.early_stop.min_delta=1.0",
]


def files_of(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("finished")
    env = {"SEQSENT_CACHE_DIR": str(root / "cache")}
    proc = run_module("seqsent.train", *RUN, *STOPPED_EARLY, f"hydra.run.dir={root / 'run'}", env=env, cwd=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root / "run", env


def test_a_finished_run_ends_with_its_final_state_in_last_ckpt_and_is_not_resumed(finished) -> None:
    run, env = finished
    metrics = json.loads((run / "metrics.json").read_text())
    last = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert metrics["global_steps"] == last["global_step"] == 20  # not the step-14 checkpoint
    stopped = {"monitor": "val/acc", "patience": 0}
    assert last[FINISHED_KEY] == {"max_epochs": 5, "max_steps": -1, "stopped_early": stopped}
    before = files_of(run)
    for ckpt in (f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}", "ckpt_path=last"):
        proc = run_module("seqsent.train", *RUN, *STOPPED_EARLY, ckpt, f"hydra.run.dir={run}", env=env)
        assert proc.returncode == 2, proc.stderr[-2000:]
        line = "was ended by early stopping after 2 epochs (on val/acc, patience 0): nothing to resume"
        assert proc.stderr.count("\n") == 1 and line in proc.stderr
        assert files_of(run) == before


def test_resuming_with_other_data_settings_is_refused(finished, tmp_path: Path) -> None:
    run, env = finished
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    before = files_of(copy)
    longer = [*STOPPED_EARLY, "trainer.max_epochs=6", f"ckpt_path={copy / 'checkpoints' / 'last.ckpt'}"]
    other = ["data.split_seed=7", "data.punctuation=drop"]
    proc = run_module("seqsent.train", *RUN, *longer, *other, f"hydra.run.dir={copy}", env=env)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.count("\n") == 1 and "was trained with other settings: " in proc.stderr
    assert "data.punctuation='drop' (checkpoint: 'keep')" in proc.stderr
    assert "data.split_seed=7 (checkpoint: 42)" in proc.stderr
    assert files_of(copy) == before
    # settings that only change speed may differ
    proc = run_module("seqsent.train", *RUN, *longer, "data.eval_batch_size=32", f"hydra.run.dir={copy}", env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads((copy / "metrics.json").read_text())["global_steps"] == 30


def test_gradflow_never_replaces_earlier_output(finished, tmp_path: Path, capsys) -> None:
    run, _ = finished
    args = ["data=synthetic", "data.n_train=240", "data.n_test=80", "num_reviews=16"]
    args.append(f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}")
    (tmp_path / "run").mkdir()
    gradflow(gradflow_config(tmp_path, args))  # writes into tmp_path/run
    first = files_of(tmp_path / "run")
    assert {"gradflow.json", "gradflow.png"} <= set(first)
    taken = tmp_path / "taken.png"
    taken.write_bytes(b"an earlier figure")
    (tmp_path / "fresh" / "run").mkdir(parents=True)
    before = files_of(run)
    for base, extra, message in (
        (tmp_path, [], "already holds a run or gradflow output (gradflow.json)"),
        (run.parent, [], "already holds a run or gradflow output (metrics.json, checkpoints"),
        (tmp_path / "fresh", [f"out={taken}"], f"{taken} exists: pass a new out= path"),
    ):
        with pytest.raises(SystemExit) as info:
            gradflow(gradflow_config(base, [*args, *extra]))
        assert info.value.code == 2 and message in capsys.readouterr().err
    assert files_of(tmp_path / "run") == first and files_of(run) == before
    assert taken.read_bytes() == b"an earlier figure" and not list((tmp_path / "fresh" / "run").iterdir())


def test_gradflow_of_one_checkpoint_gets_a_new_directory(finished, tmp_path: Path) -> None:
    """The documented `seqsent.gradflow ckpt_path=RUN/...` writes into a new run directory, not RUN."""
    run, _ = finished
    before = files_of(run)
    args = ["data=synthetic", "data.n_train=240", "data.n_test=80", "num_reviews=16"]
    out = tmp_path / "outputs"
    ckpt = run / "checkpoints" / "last.ckpt"
    proc = run_module("seqsent.gradflow", *args, f"ckpt_path={ckpt}", env={"SEQSENT_OUTPUT_DIR": str(out)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(list(out.rglob("gradflow.json"))) == 1 and files_of(run) == before


@pytest.mark.parametrize("limit", ["trainer.max_epochs=0", "trainer.limit_train_batches=0"])
def test_limits_that_train_nothing_are_refused_before_training(tmp_path: Path, limit: str) -> None:
    proc = run_module("seqsent.train", *RUN, limit, f"hydra.run.dir={tmp_path / 'r'}")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr[-2000:]
    assert f"{limit} trains nothing" in proc.stderr
    assert not (tmp_path / "r" / "metrics.json").exists() and not (tmp_path / "r" / "checkpoints").exists()


def test_a_run_directory_that_cannot_be_made_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("not a directory")
    proc = run_module("seqsent.train", *RUN, f"hydra.run.dir={tmp_path / 'afile' / 'run'}")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr[-2000:]
    assert proc.stderr == f"error: cannot write {tmp_path}/afile/run: Not a directory: use another hydra.run.dir\n"
    assert (tmp_path / "afile").read_text() == "not a directory"


def test_ctrl_c_says_how_to_resume(tmp_path: Path) -> None:
    env = {"PYTHONPATH": str(TESTS)}
    stop = ["+callbacks.kill._target_=faults.KillAt", "+callbacks.kill.at_step=9", "+callbacks.kill.sig=SIGINT"]
    every = "callbacks.step_checkpoint.every_n_train_steps=4"
    proc = run_module("seqsent.train", *RUN, every, *stop, f"hydra.run.dir={tmp_path / 'r'}", env=env)
    last = tmp_path / "r" / "checkpoints" / "last.ckpt"
    assert proc.returncode == 128 + signal.SIGINT, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1] == f"training was interrupted (SIGINT); resume with ckpt_path={last}"
    assert torch.load(last, map_location="cpu", weights_only=True)["global_step"] == 8  # the newest one
