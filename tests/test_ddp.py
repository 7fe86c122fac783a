"""Data-parallel training: per-rank shards of the batch sampler and the data module, the guards in
`seqsent.train`, and (slow) a 2-process DDP run on CPU (gloo) checked against a 1-process eval."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import numpy as np
import pytest
from helpers import TINY_BIGRAMS
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig

from seqsent.data import BucketBatchSampler, IMDBDataModule
from seqsent.errors import SeqsentError
from seqsent.train import check_launch, check_run_dir
from seqsent.utils import config_dir, register_resolvers


def shards(lengths: np.ndarray, batch_size: int, replicas: int, **kwargs) -> list[list[list[int]]]:
    """Each rank's batches (as index lists) of one epoch."""
    return [
        list(BucketBatchSampler(lengths, batch_size, num_replicas=replicas, rank=rank, **kwargs))
        for rank in range(replicas)
    ]


@pytest.mark.parametrize("replicas", [2, 3])
@pytest.mark.parametrize("batch_size", [2, 3, 16])
def test_evaluation_shards_hold_every_example_exactly_once(replicas: int, batch_size: int) -> None:
    rng = np.random.default_rng(0)
    for n in range(replicas, 90):
        lengths = rng.integers(1, 300, size=n)
        per_rank = shards(lengths, batch_size, replicas, shuffle=False)
        seen = sorted(i for rank in per_rank for batch in rank for i in batch)
        assert seen == list(range(n)), n  # no example missing, none twice
        assert len({len(rank) for rank in per_rank}) == 1, n  # the same number of batches on every rank
        assert all(1 <= len(batch) <= batch_size for rank in per_rank for batch in rank)
        single = list(BucketBatchSampler(lengths, batch_size, shuffle=False))
        assert len(per_rank[0]) == -(-len(single) // replicas)  # no more steps than needed


@pytest.mark.parametrize("bucket", [True, False])
@pytest.mark.parametrize("replicas", [2, 3])
def test_training_shards_are_disjoint_and_equal(bucket: bool, replicas: int) -> None:
    lengths = np.random.default_rng(1).integers(1, 500, size=1003)
    batch_size = 32
    for epoch in range(3):
        per_rank = []
        for rank in range(replicas):
            sampler = BucketBatchSampler(lengths, batch_size, seed=7, bucket=bucket, num_replicas=replicas, rank=rank)
            sampler.set_epoch(epoch)
            per_rank.append([i for batch in sampler for i in batch])
            assert all(len(batch) == batch_size for batch in sampler)
        sizes = {len(examples) for examples in per_rank}
        assert len(sizes) == 1  # equal-sized shards
        union = {i for examples in per_rank for i in examples}
        assert len(union) == sum(len(examples) for examples in per_rank)  # disjoint
        assert len(lengths) - len(union) < (replicas + 1) * batch_size  # only a remainder is left out


def test_too_few_training_batches_for_the_ranks() -> None:
    with pytest.raises(SeqsentError, match="fewer than 2 full batches"):
        list(BucketBatchSampler(np.ones(40, dtype=np.int64), 32, num_replicas=2, rank=1))
    with pytest.raises(ValueError, match="rank"):
        BucketBatchSampler(np.ones(40, dtype=np.int64), 8, num_replicas=2, rank=2)


def fake_trainer(world_size: int, rank: int) -> SimpleNamespace:
    return SimpleNamespace(world_size=world_size, global_rank=rank)


def test_datamodule_shards_by_the_trainers_rank(imdb_dir: Path) -> None:
    dm = IMDBDataModule(path=str(imdb_dir), vocab_size=100, batch_size=8, eval_batch_size=16)
    dm.setup("fit")
    samplers = {}
    for rank in (0, 1):
        dm.trainer = fake_trainer(2, rank)  # type: ignore[assignment]
        samplers[rank] = {
            "train": dm.train_dataloader().batch_sampler,
            "val": dm.val_dataloader().batch_sampler,
            "test": dm.test_dataloader().batch_sampler,
        }
        assert (samplers[rank]["train"].num_replicas, samplers[rank]["train"].rank) == (2, rank)
    for split, dataset in (("val", dm.val_set), ("test", dm.test_set)):
        seen = sorted(i for rank in (0, 1) for batch in samplers[rank][split] for i in batch)
        assert seen == list(range(len(dataset)))
    train = [{i for batch in samplers[rank]["train"] for i in batch} for rank in (0, 1)]
    assert not train[0] & train[1] and len(train[0]) == len(train[1])
    dm.trainer = None
    assert dm.train_dataloader().batch_sampler.num_replicas == 1


@pytest.mark.parametrize("mode", ["RUN", "MULTIRUN"])
def test_local_ddp_is_refused_inside_a_multirun(mode: str, tmp_path: Path) -> None:
    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("train", [f"hydra.mode={mode}", f"hydra.runtime.output_dir={tmp_path}"], return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    quiet = {"logger": False, "enable_checkpointing": False, "enable_progress_bar": False}
    trainer = L.Trainer(strategy="ddp", accelerator="cpu", devices=2, **quiet)
    if mode == "RUN":
        check_launch(trainer)
    else:
        with pytest.raises(SeqsentError, match="hydra/launcher=slurm"):
            check_launch(trainer)
    check_launch(L.Trainer(accelerator="cpu", devices=1, **quiet))


def test_a_requeued_slurm_run_may_reuse_its_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLURM_NTASKS", "1")  # a SLURM job (tests/test_reliability_units.py: the other cases)
    monkeypatch.setenv("SLURM_JOB_NAME", "train")
    (tmp_path / "checkpoints").mkdir()
    with pytest.raises(SeqsentError, match="already holds a run"):
        check_run_dir(tmp_path, None)
    (tmp_path / "hpc_ckpt_1.ckpt").write_bytes(b"")  # Lightning's SLURM auto-requeue checkpoint
    check_run_dir(tmp_path, None)


# -- 2 processes, end to end ------------------------------------------------------------------
DATA = ["data=synthetic", "data.n_train=320", "data.n_test=101"]  # 101: the test set splits unevenly
SMALL = [
    *DATA,
    "data.vocab_size=400",
    "data.batch_size=16",
    "data.eval_batch_size=16",
    "model.encoder.hidden_size=16",
    TINY_BIGRAMS,
    "model.embed_dim=16",
    "model.encoder.pooling=max",
    "model.lr=0.01",
    "model.dropout=0",
    "model.embed_dropout=0",
    "model.encoder.bidirectional=false",
    "model.scheduler=none",
]
DDP = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.max_epochs=3"]


def run(root: Path, outputs: str, module: str, *args: str) -> tuple[subprocess.CompletedProcess, int]:
    """Run `python -m module args` with outputs under `root/outputs`; returns the result and its pid."""
    env = {
        **os.environ,
        "SEQSENT_CACHE_DIR": str(root / "cache"),
        "SEQSENT_OUTPUT_DIR": str(root / outputs),
        "OMP_NUM_THREADS": "1",
    }
    with subprocess.Popen(
        [sys.executable, "-m", module, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as proc:
        out, err = proc.communicate(timeout=600)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), proc.pid


@pytest.mark.slow
def test_two_process_ddp_run_matches_a_single_process_eval(tmp_path: Path) -> None:
    proc, rank0_pid = run(tmp_path, "runs", "seqsent.train", *SMALL, *DDP)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "MEMBER: 2/2" in proc.stderr  # rank 1 joined

    runs = sorted((tmp_path / "runs").glob("*/*"))
    assert len(runs) == 1, runs  # rank 1 reused rank 0's directory (with its random id)
    run_dir = runs[0]
    assert list((tmp_path / "runs").rglob("metrics.json")) == [run_dir / "metrics.json"]
    assert list((tmp_path / "runs").rglob(".hydra")) == [run_dir / ".hydra"]
    # rank 1's only file is Hydra's log of its process
    names = {p.name for p in run_dir.iterdir()}
    assert names <= {".hydra", "checkpoints", "tensorboard", "metrics.json", "train.log", "train_ddp_process_1.log"}
    events = list((tmp_path / "runs").rglob("events.out.tfevents.*"))
    assert events and all(e.parent == run_dir / "tensorboard" for e in events)
    assert {e.name.split(".")[-2] for e in events} == {str(rank0_pid)}  # events.out.tfevents.<t>.<host>.<pid>.<n>
    assert len(list((tmp_path / "cache").glob("prep-*"))) == 1  # one vocabulary and encoding, for fit and test

    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test/acc"] > 0.55 and metrics["test/f1"] > 0  # a model that predicts both classes
    best = metrics["best_ckpt"]
    assert Path(best).parent == run_dir / "checkpoints"

    proc, _ = run(tmp_path, "evals", "seqsent.eval", f"ckpt_path={best}", *DATA)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (eval_metrics,) = (tmp_path / "evals").rglob("metrics.json")
    single = json.loads(eval_metrics.read_text())
    assert single["test/acc"] == metrics["test/acc"]  # every test review counted once on 2 ranks
    assert single["test/auroc"] == pytest.approx(metrics["test/auroc"], abs=1e-6)
    assert single["test/loss"] == pytest.approx(metrics["test/loss"], rel=1e-5)
