"""The bad-input catalogue: odd reviews are handled, mistakes give one line naming the fix."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
import torch

from seqsent.checkpoint import read_checkpoint
from seqsent.data import IMDBDataModule
from seqsent.data.synthetic import make_reviews, write_parquet_dir
from seqsent.errors import SeqsentError
from seqsent.models import SequenceClassifier
from seqsent.models.classifier import FORMAT, FORMAT_KEY
from seqsent.predict import predict_texts
from seqsent.predict import run as predict_main

MEGABYTE_REVIEW = "great " * 180_000  # ~1 MB
ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("bad_inputs", ROOT / "scripts" / "bad_inputs.py")
bad_inputs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bad_inputs)


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
    model = SequenceClassifier(vocab_size=20, embed_dim=4, encoder={"name": "lstm", "hidden_size": 4})
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams), FORMAT_KEY: FORMAT}, path)
    return path


def test_checkpoint_errors(checkpoint: Path, tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 2])
    not_ckpt = tmp_path / "notes.ckpt"
    not_ckpt.write_text("just text")
    other = tmp_path / "other.ckpt"
    torch.save({"weights": torch.ones(2)}, other)
    old = tmp_path / "old.ckpt"  # a checkpoint of seqsent 0.1 (before the network moved into `net`)
    torch.save({k: v for k, v in torch.load(checkpoint, weights_only=True).items() if k != FORMAT_KEY}, old)
    for path, fragment in (
        (tmp_path / "missing.ckpt", "does not exist"),
        (truncated, "not a readable checkpoint"),
        (not_ckpt, "not a readable checkpoint"),
        (other, "not a seqsent checkpoint"),
        (old, "written by seqsent 0.1 \\(before the encoder registry\\): retrain it, or load it with seqsent 0.1$"),
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
    model = SequenceClassifier(vocab_size=50, embed_dim=4, encoder={"name": "lstm", "hidden_size": 4})
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


def catalogue_rows(table: str) -> list[list[str]]:
    """The cells of a catalogue table's rows (header and divider left out)."""
    return [line.strip("| ").split(" | ") for line in table.splitlines()[2:]]


def test_the_catalogue_lists_every_case_and_nothing_was_overwritten() -> None:
    rows = catalogue_rows(bad_inputs.read_catalogue(bad_inputs.PAGE.read_text(encoding="utf-8")))
    assert [row[0] for row in rows] == [case[0] for case in bad_inputs.cases(defaultdict(Path))]
    assert all(row[4] == "none" for row in rows)
    own = next(row for row in rows if "your own module" in row[0])  # not seqsent's check: it keeps its traceback
    assert own[1] == "1" and own[3] == "yes"
    assert all(row[3] == "no" for row in rows if row is not own)
    one_class = next(row for row in rows if "one class" in row[0])  # works, and says why it learns nothing
    assert one_class[1] == "0" and "UserWarning: every training review" in one_class[2]


def test_the_catalogue_replaces_only_the_lines_between_its_markers(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(f"intro\n{bad_inputs.START}\nold table\n{bad_inputs.END}\nafter\n")
    bad_inputs.write_catalogue(page, "| new |")
    assert page.read_text() == f"intro\n{bad_inputs.START}\n| new |\n{bad_inputs.END}\nafter\n"
    page.write_text("no markers\n")
    with pytest.raises(SeqsentError, match="lacks the lines"):
        bad_inputs.write_catalogue(page, "| new |")


@pytest.mark.slow
def test_the_catalogue_is_current(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/reliability.md shows what the commands print today (`python scripts/bad_inputs.py` rewrites it);
    the output of the command that works (a probability) may differ between machines."""
    monkeypatch.setenv("SEQSENT_CACHE_DIR", str(tmp_path / "cache"))  # restored afterwards
    fresh = catalogue_rows(bad_inputs.catalogue(tmp_path.resolve()))
    documented = catalogue_rows(bad_inputs.read_catalogue(bad_inputs.PAGE.read_text(encoding="utf-8")))
    works = [i for i, row in enumerate(fresh) if row[1] == "0"]
    for i in works:
        fresh[i][2] = documented[i][2] = "(output)"
    assert fresh == documented
