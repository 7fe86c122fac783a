"""The bad-input catalogue: odd reviews are handled, mistakes give one line naming the fix."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from seqsent.checkpoint import read_checkpoint
from seqsent.data import IMDBDataModule
from seqsent.data.synthetic import make_reviews, write_parquet_dir
from seqsent.errors import SeqsentError
from seqsent.models import SequenceClassifier
from seqsent.predict import predict_texts
from seqsent.predict import run as predict_main

MEGABYTE_REVIEW = "great " * 180_000  # ~1 MB


def test_odd_reviews_in_the_data_are_encoded(tmp_path: Path) -> None:
    texts, labels = make_reviews(40, 0)
    texts[:4] = ["", "   \n\t ", MEGABYTE_REVIEW, "caf\ufffd bytes \ufffd"]
    write_parquet_dir(tmp_path / "d", {"train": (texts, labels), "test": make_reviews(10, 1)})
    dm = IMDBDataModule(path=str(tmp_path / "d"), vocab_size=100, max_len=50, val_fraction=0.25)
    dm.setup()
    lengths = dm.data.splits["train"].lengths
    assert lengths[0] == lengths[1] == 1 and lengths[2] == 180_000  # empty -> one <unk>
    batch = next(iter(dm.train_dataloader()))
    assert batch["tokens"].shape[1] == 50 and (batch["lengths"] >= 1).all()


def test_non_utf8_review_files_are_decoded_with_replacement(tmp_path: Path) -> None:
    for split in ("train", "test"):
        for name in ("neg", "pos"):
            folder = tmp_path / "aclImdb" / split / name
            folder.mkdir(parents=True)
            for i in range(4):
                (folder / f"{i}_5.txt").write_bytes(b"bad \xff\xfe bytes " + name.encode())
    dm = IMDBDataModule(path=str(tmp_path), vocab_size=50, val_fraction=0.25)
    dm.setup()
    assert len(dm.test_set) == 8


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    model = SequenceClassifier(vocab_size=20, embed_dim=4, hidden_size=4)
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}, path)
    return path


def test_checkpoint_errors(checkpoint: Path, tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 2])
    not_ckpt = tmp_path / "notes.ckpt"
    not_ckpt.write_text("just text")
    other = tmp_path / "other.ckpt"
    torch.save({"weights": torch.ones(2)}, other)
    for path, fragment in (
        (tmp_path / "missing.ckpt", "does not exist"),
        (truncated, "not a readable checkpoint"),
        (not_ckpt, "not a readable checkpoint"),
        (other, "not a seqsent checkpoint"),
    ):
        with pytest.raises(SeqsentError, match=fragment) as info:
            read_checkpoint(path)
        assert "\n" not in str(info.value)


def test_predict_without_vocabulary_and_with_bad_inputs(checkpoint: Path, tmp_path: Path, capsys) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    for args, fragment in (
        ([f"ckpt_path={checkpoint}", "text=hello"], "carries no vocabulary"),
        ([f"ckpt_path={checkpoint}", f"file={empty}"], "holds no reviews"),
        ([f"ckpt_path={checkpoint}", "text=   "], "empty"),
    ):
        with pytest.raises(SystemExit) as info:
            predict_main(args)
        assert info.value.code == 2 and fragment in capsys.readouterr().err


def test_predict_handles_a_megabyte_review(tmp_path: Path) -> None:
    dm = IMDBDataModule(path=str(tmp_path / "d"), vocab_size=50, max_len=30)
    write_parquet_dir(tmp_path / "d", {"train": make_reviews(40, 0), "test": make_reviews(10, 1)})
    dm.setup()
    model = SequenceClassifier(vocab_size=50, embed_dim=4, hidden_size=4)
    model.preprocessing = dm.preprocessing()
    probs = predict_texts(model.eval(), [MEGABYTE_REVIEW, "fine"])
    assert len(probs) == 2 and all(0 <= p <= 1 for p in probs)


@pytest.mark.parametrize(
    "override,fragment",
    [
        ("model.lr=-0.1", "learning rate"),
        ("data.val_fraction=1.5", "val_fraction"),
        ("data.vocab_size=1", "vocab_size"),
    ],
)
def test_nonsense_numbers_from_the_command_line(tmp_path: Path, override: str, fragment: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "seqsent.train", "data=synthetic", override, f"hydra.run.dir={tmp_path / 'r'}"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ},
    )
    assert proc.returncode == 2 and fragment in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0
