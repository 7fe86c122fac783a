"""Faults: SIGKILL mid-epoch then resume gives the uninterrupted result; same seed, same metrics;
non-finite loss stops with the step named; concurrent cache builders; atomic checkpoints."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import TINY_BIGRAMS

from seqsent.errors import SeqsentError
from seqsent.reliability import AtomicCheckpointIO, rng_state, set_rng_state

TESTS = Path(__file__).parent
RUN = [
    "data=synthetic",
    "data.n_train=400",
    "data.n_test=100",
    "data.vocab_size=400",
    "data.batch_size=8",
    "data.bucket=true",
    "model.encoder.hidden_size=16",
    TINY_BIGRAMS,
    "model.embed_dim=16",
    "model.dropout=0.3",
    "model.embed_dropout=0.2",
    "model.encoder.pooling=mean",
    "model.lr=2e-2",
    "model.scheduler=cosine",
    "trainer.max_epochs=3",
    "callbacks.step_checkpoint.every_n_train_steps=5",
]


def env_for(root: Path) -> dict:
    return {**os.environ, "SEQSENT_CACHE_DIR": str(root / "cache"), "PYTHONPATH": str(TESTS)}


def launch(root: Path, *args: str) -> subprocess.CompletedProcess:
    """`python -m seqsent.train ARGS` with `root` as working dir and cache, the fault helpers importable."""
    return subprocess.run(
        [sys.executable, "-m", "seqsent.train", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env_for(root),
        cwd=root,
    )


def train(root: Path, name: str, *extra: str) -> dict:
    proc = launch(root, *RUN, f"hydra.run.dir={root / name}", *extra)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((root / name / "metrics.json").read_text())


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("ref")
    return root, train(root, "a")


def test_same_seed_same_metrics(reference: tuple[Path, dict]) -> None:
    root, first = reference
    second = train(root, "b")
    for key in ("val/acc_best", "test/acc", "test/loss", "test/auroc"):
        assert first[key] == second[key], key


def test_sigkill_mid_epoch_then_resume_matches_uninterrupted(reference: tuple[Path, dict]) -> None:
    root, expected = reference
    kill = ["+callbacks.kill._target_=faults.KillAt", "+callbacks.kill.at_step=63"]  # step 23 of epoch 2
    proc = launch(root, *RUN, *kill, f"hydra.run.dir={root / 'k'}")
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    ckpt = torch.load(root / "k" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    steps_per_epoch = 40
    assert ckpt["global_step"] == 60  # the last 5-step checkpoint before the kill, mid-epoch 2
    assert not (root / "k" / "metrics.json").exists()
    resumed = train(root, "k", f"ckpt_path={root / 'k' / 'checkpoints' / 'last.ckpt'}")
    assert resumed["global_steps"] == expected["global_steps"] == 3 * steps_per_epoch
    assert expected["test/auroc"] > 0.7  # it learned, so equal metrics mean something
    for key in ("val/acc_best", "test/acc", "test/loss", "test/auroc"):
        assert resumed[key] == expected[key], key
    final = [torch.load(root / run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"] for run in "ak"]
    for name, tensor in final[0].items():
        assert torch.equal(tensor, final[1][name]), name
    assert (root / "k" / ".hydra" / "config.yaml").is_file()  # the run's own record, and the resume's beside it
    assert "ckpt_path=" in (root / "k" / ".hydra" / "resume-1" / "overrides.yaml").read_text()
    events = list((root / "k" / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) >= 2  # one TensorBoard run directory, continued


@pytest.mark.parametrize("at_step", [63, 80])  # step 23 of epoch 2; its last step, before its validation
def test_sigterm_saves_where_it_stopped_exits_nonzero_and_resumes_to_the_uninterrupted_result(
    reference: tuple[Path, dict], at_step: int
) -> None:
    """What a scheduler's `kill` (or its time limit) sends: the run stops with a checkpoint of the
    step it arrived in (at an epoch's last step: after that epoch's validation, which Lightning would
    skip on resuming a checkpoint saved before it), exit code 143 and how to resume; the resumed run
    ends where the uninterrupted one did. A stale temporary file of a killed checkpoint write goes."""
    root, expected = reference
    name = f"t{at_step}"
    term = [f"+callbacks.kill.at_step={at_step}", "+callbacks.kill.sig=SIGTERM"]
    proc = launch(root, *RUN, "+callbacks.kill._target_=faults.KillAt", *term, f"hydra.run.dir={root / name}")
    last = root / name / "checkpoints" / "last.ckpt"
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1] == f"training was interrupted (SIGTERM); resume with ckpt_path={last}"
    assert torch.load(last, map_location="cpu", weights_only=True)["global_step"] == at_step  # no older one
    assert not (root / name / "metrics.json").exists()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = last.with_name(f".last.ckpt.tmp-{dead.stdout.strip()}-abc123")
    stale.write_bytes(b"half a checkpoint")
    resumed = train(root, name, f"ckpt_path={last}")
    assert not stale.exists()
    assert resumed["global_steps"] == expected["global_steps"]
    for key in ("val/acc_best", "test/acc", "test/loss", "test/auroc"):
        assert resumed[key] == expected[key], key
    assert len(resumed["epoch_seconds"]) == 3 and max(resumed["epoch_seconds"]) < 300  # not since the machine started


def test_sigkill_after_an_epoch_end_checkpoint_then_resume_matches_uninterrupted(reference: tuple[Path, dict]) -> None:
    """The newest checkpoint is the one from the end of epoch 1: the resumed run starts a fresh
    epoch, whose DataLoader iterator draws from the global RNG just as the uninterrupted run's did."""
    root, expected = reference
    kill = ["+callbacks.kill._target_=faults.KillAt", "+callbacks.kill.at_step=43"]  # step 3 of epoch 2
    no_step_ckpt = "callbacks.step_checkpoint.every_n_train_steps=1000"
    proc = launch(root, *RUN, no_step_ckpt, *kill, f"hydra.run.dir={root / 'e'}")
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    ckpt = torch.load(root / "e" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 40  # the end of epoch 1
    resumed = train(root, "e", no_step_ckpt, f"ckpt_path={root / 'e' / 'checkpoints' / 'last.ckpt'}")
    for key in ("val/acc_best", "test/acc", "test/loss", "test/auroc"):
        assert resumed[key] == expected[key], key
    final = [torch.load(root / run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"] for run in "ae"]
    for name, tensor in final[0].items():
        assert torch.equal(tensor, final[1][name]), name


def test_non_finite_loss_stops_with_the_step_and_keeps_checkpoint(tmp_path: Path) -> None:
    """The loss turns NaN at step 7, between the checkpoints of steps 5 and 10: the check before the
    step-10 checkpoint stops the run, and last.ckpt stays the finite one of step 5."""
    proc = launch(
        tmp_path,
        *RUN[:7],
        "callbacks.step_checkpoint.every_n_train_steps=5",
        "+callbacks.poison._target_=faults.Poison",
        "+callbacks.poison.at_step=7",
        f"hydra.run.dir={tmp_path / 'nan'}",
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    line = proc.stderr.strip().splitlines()[-1]
    assert "non-finite training loss at step 7" in line and "last good checkpoint kept" in line
    assert "Traceback" not in proc.stderr
    ckpt = torch.load(tmp_path / "nan" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 5
    assert all(torch.isfinite(t).all() for t in ckpt["state_dict"].values())


def test_atomic_checkpoint_io_never_leaves_partial_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    io = AtomicCheckpointIO()
    target = tmp_path / "last.ckpt"
    io.save_checkpoint({"x": torch.ones(3)}, target)

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(SeqsentError, match=f"cannot write {target}: disk full: use another hydra.run.dir"):
        io.save_checkpoint({"x": torch.zeros(3)}, target)
    assert torch.load(target, weights_only=True)["x"].tolist() == [1.0, 1.0, 1.0]
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_rng_state_round_trips_through_weights_only(tmp_path: Path) -> None:
    state = rng_state()
    torch.save(state, tmp_path / "rng.pt")
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.rand(5), np.random.rand(5), random.random()
    set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert torch.equal(torch.rand(3), expected[0])  # torch, numpy and Python's generators all restored
    assert np.array_equal(np.random.rand(3), expected[1]) and random.random() == expected[2]


def test_concurrent_cache_builders_never_leave_half_written_entries(tmp_path: Path, imdb_dir: Path) -> None:
    code = (
        "import sys; from seqsent.data import IMDBDataModule; "
        "dm = IMDBDataModule(path=sys.argv[1], vocab_size=120, cache_dir=sys.argv[2]); dm.setup(); "
        "print(len(dm.train_set), dm.data.directory)"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(imdb_dir), str(tmp_path / "c")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-500:] for o in outs]
    assert len({o[0] for o in outs}) == 1
    entries = list((tmp_path / "c").iterdir())
    assert len(entries) == 1 and (entries[0] / "meta.json").is_file()


@pytest.mark.parametrize("precision,raises", [("32-true", True), ("bf16-mixed", True), ("16-mixed", False)])
def test_gradient_guard_leaves_fp16_loss_scale_overflows_to_the_scaler(precision: str, raises: bool) -> None:
    """An infinite gradient stops the run, except under 16-mixed: there the loss scale overflows on
    purpose at first, and Lightning's GradScaler skips those steps and lowers the scale."""
    from types import SimpleNamespace

    from seqsent.models import SequenceClassifier

    model = SequenceClassifier(vocab_size=20, embed_dim=4, encoder={"name": "lstm", "hidden_size": 4})
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    model._trainer = SimpleNamespace(precision=precision, global_step=7)
    model.on_before_optimizer_step(None)
    model.check_finite()  # finite so far
    model.net.head[1].weight.grad.fill_(float("inf"))
    model.on_before_optimizer_step(None)  # only noted on the device: no wait for it here
    if raises:
        with pytest.raises(FloatingPointError, match="non-finite gradient at step 7"):
            model.check_finite()
    else:
        model.check_finite()


def test_cache_writer_that_loses_the_race_keeps_the_winners_entry(tmp_path: Path) -> None:
    """The losing side of the race the test above cannot force: its rename fails on the finished
    entry; it must keep that entry as it is, raise nothing and leave no temporary directory."""
    from seqsent.data.cache import EncodedSplit, _read_entry, _write_entry

    entry = tmp_path / "prep-abc"
    split = EncodedSplit(ids=np.arange(5), offsets=np.array([0, 2, 5]), labels=np.array([0, 1]))
    _write_entry(entry, '{"winner": 1}', {"train": split}, {"k": 1})
    before = {p.name: p.read_bytes() for p in entry.iterdir()}
    _write_entry(entry, '{"loser": 2}', {"train": split}, {"k": 1})
    assert {p.name: p.read_bytes() for p in entry.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["prep-abc"]
    assert _read_entry(entry, ("train",))[0] == '{"winner": 1}'
    # a rename that fails with no finished entry in place is a real error, and the partial build goes
    blocked = tmp_path / "prep-blocked"
    blocked.mkdir()
    (blocked / "stray").write_text("not an entry")
    with pytest.raises(SeqsentError, match="cannot write"):  # one line naming the cache entry
        _write_entry(blocked, "{}", {"train": split}, {"k": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prep-abc", "prep-blocked"]


def test_metrics_files_are_strict_json(tmp_path: Path) -> None:
    """A run without validation has no val/acc_best (NaN): written as null, which `jq` and every
    strict parser read, with numpy and torch scalars as plain numbers."""
    from seqsent.utils import write_json

    path = tmp_path / "metrics.json"
    write_json(
        path, {"val/acc_best": float("nan"), "x": [float("inf"), 1.0], "t": torch.tensor(0.5), "n": np.float32(2)}
    )

    def refuse(constant: str) -> None:
        raise ValueError(f"non-standard JSON constant {constant}")

    assert json.loads(path.read_text(), parse_constant=refuse) == {
        "val/acc_best": None,
        "x": [None, 1.0],
        "t": 0.5,
        "n": 2.0,
    }
