"""Reliability checks without a training run: output files (permissions, full disks), stale
checkpoint temporaries, the epoch timer after a resume, run-dir, resume and training-length checks,
and checkpoints that load safely but carry garbled seqsent entries."""

from __future__ import annotations

import errno
import os
import pickle
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf

from seqsent import callbacks as callbacks_module
from seqsent.callbacks import EpochTimer
from seqsent.checkpoint import load_classifier, preprocessing_of, read_checkpoint
from seqsent.data.synthetic import SyntheticDataModule
from seqsent.errors import SeqsentError
from seqsent.models import SequenceClassifier
from seqsent.models.classifier import FORMAT, FORMAT_KEY, PREPROCESSING_KEY
from seqsent.reliability import remove_stale_temporaries
from seqsent.train import SPEED_ONLY_DATA, check_run_dir, check_trains, check_unfinished, differing
from seqsent.utils import atomic_write_text, check_new_output, write_json


@pytest.fixture
def umask() -> Iterator[Callable[[int], int]]:
    """`os.umask`, starting from 022; the process's umask is put back afterwards."""
    saved = os.umask(0o022)
    yield os.umask
    os.umask(saved)


def test_results_are_readable_as_the_umask_allows(tmp_path: Path, umask: Callable[[int], int]) -> None:
    """metrics.json and the comparison reports came out 0600 (mkstemp's mode) while checkpoints
    were 0644: they follow the umask like every other file."""
    write_json(tmp_path / "metrics.json", {"a": 1})
    assert (tmp_path / "metrics.json").stat().st_mode & 0o777 == 0o644
    umask(0o077)
    atomic_write_text(tmp_path / "comparison.md", "private")
    assert (tmp_path / "comparison.md").stat().st_mode & 0o777 == 0o600


def test_a_failed_write_is_one_line_and_keeps_the_earlier_file(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "metrics.json"
    write_json(path, {"old": 1})

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(SeqsentError) as info:
        write_json(path, {"new": 2}, "hydra.run.dir")
    assert str(info.value) == (
        f"cannot write {path}: No space left on device: free space there or use another hydra.run.dir"
    )
    assert path.read_text() == '{\n  "old": 1\n}\n' and [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
    monkeypatch.undo()
    (tmp_path / "afile").write_text("x")
    with pytest.raises(SeqsentError, match="cannot write .*afile/r/m.json: Not a directory: use another out="):
        atomic_write_text(tmp_path / "afile" / "r" / "m.json", "{}", "out=")


def test_new_outputs_must_be_writable(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # as a user without write permission there
    with pytest.raises(SeqsentError, match=f"out= {tmp_path}/new/f.png: {tmp_path} is not writable for you"):
        check_new_output(tmp_path / "new" / "f.png", "out=")


def test_stale_temporaries_of_killed_checkpoint_writes_are_removed(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    names = {
        f".last.ckpt.tmp-{dead.stdout.strip()}-0a1b2c": False,  # its writer is gone
        f".last.ckpt.tmp-{os.getpid()}-0a1b2c": True,  # a live writer's
        "last.ckpt": True,
        ".notes.tmp-x": True,
    }
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    removed = remove_stale_temporaries(tmp_path)
    assert [p.name for p in removed] == [n for n, kept in names.items() if not kept]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(n for n, kept in names.items() if kept)


def test_epoch_seconds_of_an_epoch_resumed_mid_way(monkeypatch) -> None:
    """Lightning skips `on_train_epoch_start` when it resumes mid-epoch: the epoch counts from the
    resume (it counted from the clock's zero, the machine's start), validation left out."""
    clock = iter([1000.0, 1010.0, 1013.0, 1020.0, 1024.0])
    monkeypatch.setattr(callbacks_module, "time", SimpleNamespace(perf_counter=lambda: next(clock)))
    logged = {}
    module = SimpleNamespace(log=lambda key, value: logged.update({key: value}))
    trainer = SimpleNamespace(sanity_checking=False)
    timer = EpochTimer()
    timer.on_train_start(trainer, module)  # 1000: resumed mid-epoch, no epoch start
    timer.on_validation_start(trainer, module)  # 1010: 10 s of training
    timer.on_train_batch_start(trainer, None, 0)  # 1013: 3 s of validation (mid-epoch), training again
    timer.on_validation_start(trainer, module)  # 1020: 7 s more of training
    timer.on_train_epoch_end(trainer, module)  # 1024
    assert timer.epoch_seconds == [17.0] and logged == {"time/epoch_seconds": 17.0}


def test_a_stray_hpc_checkpoint_leaves_a_finished_run_closed(tmp_path: Path, monkeypatch) -> None:
    """Only a SLURM job requeued into its unfinished run may reuse the directory (Lightning resumes
    it from the hpc_ckpt); a finished run, or one outside SLURM, stays refused."""
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "hpc_ckpt_1.ckpt").write_bytes(b"")
    with pytest.raises(SeqsentError, match="already holds a run"):
        check_run_dir(tmp_path, None)  # not a SLURM job
    monkeypatch.setenv("SLURM_NTASKS", "1")
    monkeypatch.setenv("SLURM_JOB_NAME", "train")
    check_run_dir(tmp_path, None)  # the requeued job
    (tmp_path / "metrics.json").write_text("{}")
    with pytest.raises(SeqsentError, match=r"already holds a run \(metrics.json, checkpoints\)"):
        check_run_dir(tmp_path, None)


@pytest.mark.parametrize("key,value", [("max_epochs", 0), ("max_steps", 0), ("limit_train_batches", 0.0)])
def test_limits_that_train_nothing_are_refused(key: str, value: float) -> None:
    with pytest.raises(SeqsentError, match=f"trainer.{key}=0 trains nothing"):
        check_trains(OmegaConf.create({"max_epochs": 3, "max_steps": -1, key: value}))
    check_trains(OmegaConf.create({"max_epochs": 1, "max_steps": -1, "limit_train_batches": 0.5}))


def test_resume_names_the_data_settings_that_differ() -> None:
    recorded = {"punctuation": "keep", "split_seed": 42, "num_workers": 0, "path": "a", "max_len": 200}
    configured = {"punctuation": "drop", "split_seed": 42, "num_workers": 4, "path": "b", "max_len": 200}
    assert differing("data", configured, recorded, SPEED_ONLY_DATA) == [
        "data.punctuation='drop' (checkpoint: 'keep')",
        "data.path='b' (checkpoint: 'a')",
    ]


def test_finished_checkpoints_refuse_resuming_unless_the_limits_grow() -> None:
    ended = {"epoch": 2, "global_step": 20, "seqsent_finished": {"max_epochs": 5, "max_steps": -1}}
    for limits, refused in (({"max_epochs": 5, "max_steps": -1}, True), ({"max_epochs": 6, "max_steps": -1}, False)):
        cfg = OmegaConf.create({"trainer": limits})
        if refused:
            with pytest.raises(SeqsentError, match=r"has finished training \(2 epochs, 20 steps; it ended under"):
                check_unfinished(ended, cfg, "x.ckpt")
        else:
            check_unfinished(ended, cfg, "x.ckpt")
    with pytest.raises(SeqsentError, match="x.ckpt is damaged: its epoch or global_step is not a number"):
        check_unfinished({"epoch": "two"}, OmegaConf.create({"trainer": {"max_epochs": 5}}), "x.ckpt")


class Evil:
    def __reduce__(self):
        return (print, ("this ran",))


@pytest.fixture
def good(tmp_path: Path) -> dict:
    """A checkpoint's entries as seqsent writes them (small model, real vocabulary)."""
    dm = SyntheticDataModule(n_train=60, n_test=20, vocab_size=40, max_len=20, cache_dir=str(tmp_path / "c"))
    dm.setup()
    model = SequenceClassifier(vocab_size=40, embed_dim=4, encoder={"name": "lstm", "hidden_size": 4})
    return {
        "state_dict": model.state_dict(),
        "hyper_parameters": dict(model.hparams),
        PREPROCESSING_KEY: dm.preprocessing(),
        FORMAT_KEY: FORMAT,
    }


def garbled(good: dict, key: str, value: object, inner: str | None = None) -> dict:
    ckpt = {k: dict(v) if isinstance(v, dict) else v for k, v in good.items()}
    if inner is None:
        ckpt[key] = value
    else:
        ckpt[key][inner] = value
    return ckpt


@pytest.mark.parametrize(
    "change,message",
    [
        (("state_dict", [1, 2]), "is damaged: its state_dict is a list, not a mapping"),
        (("hyper_parameters", "lstm"), "is damaged: its hyper_parameters is a str, not a mapping"),
        (("hyper_parameters", "abc", "embed_dim"), "does not match SequenceClassifier (model.embed_dim='abc'"),
        (("hyper_parameters", {"name": "lstm", "hidden_size": "abc"}, "encoder"), "(model.encoder.hidden_size='abc'"),
        (("hyper_parameters", {"name": "transformerxl"}, "encoder"), "(model.encoder.name='transformerxl': unknown"),
        (("hyper_parameters", 3, "num_classes"), "does not match SequenceClassifier (Error(s) in loading"),
        (
            (PREPROCESSING_KEY, ["a", "b", "c"], "label_names"),
            f"{PREPROCESSING_KEY}.label_names is \"['a', 'b', 'c']\"",
        ),
        (("hyper_parameters", 10**7, "vocab_size"), "does not match SequenceClassifier (Error(s) in loading"),
        ((PREPROCESSING_KEY, ["json"]), f"is damaged: its {PREPROCESSING_KEY} is a list"),
        ((PREPROCESSING_KEY, "{not json", "tokenizer_json"), f"{PREPROCESSING_KEY}.tokenizer_json is str '{{not json'"),
        ((PREPROCESSING_KEY, '{"model": 1}', "tokenizer_json"), f"{PREPROCESSING_KEY}.tokenizer_json is str"),
        ((PREPROCESSING_KEY, "200", "max_len"), f"{PREPROCESSING_KEY}.max_len is str '200'"),
        ((PREPROCESSING_KEY, "left", "padding"), f"{PREPROCESSING_KEY}.padding is str 'left'"),
    ],
)
def test_garbled_seqsent_entries_are_one_line_errors(good: dict, tmp_path: Path, change: tuple, message: str) -> None:
    path = tmp_path / "model.ckpt"
    torch.save(garbled(good, *change), path)
    with pytest.raises(SeqsentError) as info:
        preprocessing_of(load_classifier(path), path)
    assert message in str(info.value) and "\n" not in str(info.value), str(info.value)
    assert str(info.value).endswith("pass a .ckpt written by seqsent.train")


def test_missing_preprocessing_entries_are_named(good: dict, tmp_path: Path) -> None:
    path = tmp_path / "model.ckpt"
    ckpt = garbled(good, PREPROCESSING_KEY, None, "padding")
    del ckpt[PREPROCESSING_KEY]["padding"]
    torch.save(ckpt, path)
    with pytest.raises(SeqsentError, match=f"{PREPROCESSING_KEY}.padding is missing"):
        load_classifier(path)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_an_unsafe_checkpoint_is_refused_in_full_words(good: dict, tmp_path: Path, capsys) -> None:
    path = tmp_path / "evil.ckpt"
    torch.save({**good, "extra": Evil()}, path)
    plain = tmp_path / "plain.ckpt"
    plain.write_bytes(pickle.dumps({"state_dict": {}}))
    for file in (path, plain):
        with pytest.raises(SeqsentError) as info:
            read_checkpoint(file)
        assert str(info.value) == (
            f"{file} is not a safe seqsent checkpoint: it needs Python's unrestricted unpickling, which can run "
            "code, so it was not loaded: pass a .ckpt written by seqsent.train"
        )
    assert "this ran" not in capsys.readouterr().out
    notes = tmp_path / "notes.ckpt"
    notes.write_text("just text")
    with pytest.raises(SeqsentError, match=r"notes.ckpt is not a readable checkpoint \(KeyError: not a PyTorch"):
        read_checkpoint(notes)
