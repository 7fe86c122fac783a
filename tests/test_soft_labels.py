"""Soft labels: the file format, the data module's training part, scripts/soft_label.py and a student run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from helpers import TINY_BIGRAMS, run_module, run_script

from seqsent.checkpoint import load_classifier
from seqsent.data import IMDBDataModule
from seqsent.data.cache import split_indices
from seqsent.data.soft_labels import drop_known, read_soft_labels, soft_label_info, write_soft_labels
from seqsent.data.synthetic import make_reviews, write_parquet_dir
from seqsent.errors import SeqsentError
from seqsent.predict import predict_texts

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "soft_label.py"
SELF_TRAIN = SCRIPT.parent / "self_train.py"


def test_soft_labels_round_trip_with_their_metadata(tmp_path: Path) -> None:
    file = tmp_path / "soft" / "u.parquet"
    write_soft_labels(file, ["good film", "bad film"], np.array([0.9, 0.25]), {"teachers": ["a.ckpt"]})
    texts, probs = read_soft_labels(file)
    assert texts == ["good film", "bad film"]
    assert probs.dtype == np.float32 and probs.tolist() == pytest.approx([0.9, 0.25])
    assert soft_label_info(file) == {"teachers": ["a.ckpt"]}
    assert [p.name for p in file.parent.iterdir()] == ["u.parquet"]  # no temporary file left


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({"text": ["a"], "label": [1]}, "has no 'prob' column (found ['text', 'label'])"),
        ({"text": pa.array([], pa.string()), "prob": pa.array([], pa.float32())}, "holds no reviews"),
        ({"text": ["a", "b"], "prob": [0.5, 1.5]}, "has 1 probabilities outside [0, 1] (first at row 1)"),
        ({"text": ["a", "b"], "prob": [float("nan"), 0.5]}, "has 1 probabilities outside [0, 1] (first at row 0)"),
        ({"text": ["a", "b"], "prob": ["high", "low"]}, "its 'prob' column holds string, not numbers"),
        ({"text": [b"a", b"b"], "prob": [0.5, 0.5]}, "its 'text' column holds binary, not text"),
        ({"text": [1, 2], "prob": [0.5, 0.5]}, "its 'text' column holds int64, not text"),
    ],
)
def test_bad_soft_label_files_are_one_line_errors(tmp_path: Path, columns: dict, message: str) -> None:
    file = tmp_path / "bad.parquet"
    pq.write_table(pa.table(columns), file)
    with pytest.raises(SeqsentError, match="make one with scripts/soft_label.py") as err:
        read_soft_labels(file)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_missing_and_corrupt_soft_label_files(tmp_path: Path) -> None:
    with pytest.raises(SeqsentError, match=r"soft-label file .*nope.parquet does not exist"):
        read_soft_labels(tmp_path / "nope.parquet")
    (tmp_path / "junk.parquet").write_text("not parquet")
    with pytest.raises(SeqsentError, match=r"cannot read .*junk.parquet as parquet"):
        read_soft_labels(tmp_path / "junk.parquet")


def test_drop_known_removes_exactly_the_known_reviews() -> None:
    ids = np.array([1, 2, 3, 4, 5, 6], dtype=np.int32)
    offsets = np.array([0, 2, 3, 6])  # [1 2] [3] [4 5 6]
    probs = np.array([0.1, 0.2, 0.3], dtype=np.float32)
    known = {np.array([3], dtype=np.int32).tobytes()}
    new_ids, new_offsets, new_probs, dropped = drop_known(ids, offsets, probs, known)
    assert dropped == 1
    assert new_ids.tolist() == [1, 2, 4, 5, 6] and new_offsets.tolist() == [0, 2, 5]
    assert new_probs.tolist() == pytest.approx([0.1, 0.3])


@pytest.fixture
def data_with_unlabeled(tmp_path: Path) -> Path:
    root = tmp_path / "imdb"
    unlabeled, _ = make_reviews(60, seed=3)
    write_parquet_dir(
        root,
        {
            "train": make_reviews(200, seed=1),
            "test": make_reviews(100, seed=2),
            "unsupervised": (unlabeled, [-1] * len(unlabeled)),
        },
    )
    return root


def _texts(data: Path, split: str) -> list[str]:
    return pq.read_table(data / f"{split}-00000-of-00001.parquet").column("text").to_pylist()


def _module(path: Path, tmp_path: Path, soft: Path | None = None) -> IMDBDataModule:
    dm = IMDBDataModule(
        path=str(path), vocab_size=300, max_len=64, batch_size=8, cache_dir=str(tmp_path / "c"), soft_labels=soft
    )
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_the_training_part_gains_the_soft_reviews_and_nothing_else_changes(
    data_with_unlabeled: Path, tmp_path: Path
) -> None:
    unlabeled = _texts(data_with_unlabeled, "unsupervised")
    train_texts = _texts(data_with_unlabeled, "train")
    test_texts = _texts(data_with_unlabeled, "test")
    _, val_idx = split_indices(len(train_texts), 0.2, 42)
    leaked = [test_texts[0], test_texts[5], train_texts[int(val_idx[0])]]  # must be dropped
    texts = unlabeled + leaked
    probs = np.linspace(0.05, 0.95, len(texts)).astype(np.float32)
    soft = tmp_path / "soft.parquet"
    write_soft_labels(soft, texts, probs, {})

    plain = _module(data_with_unlabeled, tmp_path)
    dm = _module(data_with_unlabeled, tmp_path, soft)
    assert dm.tokenizer_json == plain.tokenizer_json  # the vocabulary is still the gold training part's
    assert (dm.soft_added, dm.soft_dropped) == (len(unlabeled), 3)
    assert len(dm.train_set) == len(plain.train_set) + len(unlabeled)
    assert "60 soft-labeled" in dm.summary() and "3 dropped as val/test reviews" in dm.summary()
    for name in ("val_set", "test_set"):
        a, b = getattr(dm, name), getattr(plain, name)
        assert len(a) == len(b) and all(np.array_equal(a[i][0], b[i][0]) and a[i][1] == b[i][1] for i in range(len(a)))
    gold = [dm.train_set[i] for i in range(len(plain.train_set))]
    assert all(np.array_equal(g[0], p[0]) and g[1] == p[1] for g, p in zip(gold, plain.train_set, strict=True))
    extra = [dm.train_set[i] for i in range(len(plain.train_set), len(dm.train_set))]
    assert [label for _, label in extra] == pytest.approx(probs[: len(unlabeled)].tolist())
    batch = next(iter(dm.train_dataloader()))
    assert batch["labels"].dtype == torch.float32
    labels = torch.cat([b["labels"] for b in dm.train_dataloader()])
    assert len(labels) == len(dm.train_set) and ((labels > 0) & (labels < 1)).sum() == len(unlabeled)


def test_soft_labels_from_a_teacher_with_another_validation_split_are_refused(
    data_with_unlabeled: Path, tmp_path: Path
) -> None:
    """A teacher that validated on other reviews trained on part of the student's validation split,
    which would make the student's val/acc optimistic: `soft_label.py` records each teacher's split."""
    texts = _texts(data_with_unlabeled, "unsupervised")
    probs = np.full(len(texts), 0.7, dtype=np.float32)
    same = tmp_path / "same.parquet"
    write_soft_labels(same, texts, probs, {"teacher_splits": [{"val_fraction": 0.2, "split_seed": 42}, None]})
    assert _module(data_with_unlabeled, tmp_path, same).soft_added == len(texts)  # same split (None: not recorded)
    other = tmp_path / "other.parquet"
    write_soft_labels(other, texts, probs, {"teacher_splits": [{"val_fraction": 0.1, "split_seed": 42}]})
    with pytest.raises(
        SeqsentError, match=r"validated on other reviews .* use data.val_fraction=0.1 data.split_seed=42"
    ):
        _module(data_with_unlabeled, tmp_path, other)


def test_soft_labels_of_only_held_out_reviews_are_refused(data_with_unlabeled: Path, tmp_path: Path) -> None:
    test_texts = _texts(data_with_unlabeled, "test")
    soft = tmp_path / "leak.parquet"
    write_soft_labels(soft, test_texts[:4], np.full(4, 0.7), {})
    with pytest.raises(SeqsentError, match="every review in .* is a validation or test review"):
        _module(data_with_unlabeled, tmp_path, soft)


def test_self_train_labels_with_a_teacher_then_trains_a_student(data_with_unlabeled: Path, tmp_path: Path) -> None:
    out = tmp_path / "st"
    tiny = ["data.vocab_size=300", "data.batch_size=16", "model.embed_dim=16", "model.encoder.hidden_size=16"]
    tiny.append(TINY_BIGRAMS)
    proc = run_script(SELF_TRAIN, "--data", str(data_with_unlabeled), "--out", str(out), "--", *tiny,
                      "trainer.max_epochs=1")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert "self_train: teachers test/acc" in proc.stderr and "== self_train: student (seed 42) ==" in proc.stdout
    (teacher,) = summary["teachers"]
    ckpt = teacher["best_ckpt"]
    student = json.loads((out / "student" / "metrics.json").read_text())
    assert student["soft_labeled_reviews"] == 60 and student["train_reviews"] == 160 + 60
    assert student["epochs"] == 1 and summary["student"]["test/acc"] == student["test/acc"]
    assert "60 of them soft-labeled" in proc.stdout

    soft = out / "soft_labels.parquet"
    texts, probs = read_soft_labels(soft)
    unlabeled = _texts(data_with_unlabeled, "unsupervised")
    assert texts == unlabeled
    # in the reviews' own order, batched as they come: independent of soft_label.py's length sorting
    np.testing.assert_allclose(probs, predict_texts(load_classifier(ckpt), unlabeled), atol=1e-5)
    assert soft_label_info(soft)["teachers"] == [str(Path(ckpt).resolve())]
    assert soft_label_info(soft)["teacher_splits"] == [{"val_fraction": 0.2, "split_seed": 42}]

    # two copies of one teacher average to that teacher's own probabilities
    twice = tmp_path / "twice.parquet"
    proc = run_script(SCRIPT, "--data", str(data_with_unlabeled), "--out", str(twice), "--limit", "10", ckpt, ckpt)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout)["reviews"] == 10
    np.testing.assert_allclose(read_soft_labels(twice)[1], probs[:10], atol=1e-6)
    hard = tmp_path / "hard.parquet"
    proc = run_script(SCRIPT, "--data", str(data_with_unlabeled), "--out", str(hard), "--limit", "10", "--hard", ckpt)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert read_soft_labels(hard)[1].tolist() == (probs[:10] >= 0.5).astype(np.float32).tolist()
    assert soft_label_info(hard)["hard"] is True

    again = run_script(SCRIPT, "--data", str(data_with_unlabeled), "--out", str(soft), ckpt)
    assert again.returncode == 2 and "exists: pass a new --out path" in again.stderr
    assert read_soft_labels(soft)[1].tolist() == probs.tolist()  # not overwritten
    rerun = run_script(SELF_TRAIN, "--data", str(data_with_unlabeled), "--out", str(out))
    assert rerun.returncode == 2
    assert rerun.stderr.strip().splitlines() == [
        f"error: {out} is not empty: pass a new --out directory (earlier runs are never overwritten)"
    ]
    fresh = tmp_path / "fresh"  # data without unlabeled reviews: refused before --out is made
    no_unsup = tmp_path / "no_unsup"
    write_parquet_dir(no_unsup, {"train": make_reviews(20, seed=1), "test": make_reviews(20, seed=2)})
    bad = run_script(SELF_TRAIN, "--data", str(no_unsup), "--out", str(fresh))
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and not fresh.exists()


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["--teacher-seeds", "42", "42"], "--teacher-seeds 42 42 repeats a seed"),
        (["--", "seed=7"], "'seed=7' after --: the script sets seed for each stage itself"),
        (["--", "data=synthetic"], "'data=synthetic' after --: the script sets data"),
        (["--", "data.path=/elsewhere"], "sets data.path for each stage"),
        (["--", "hydra.run.dir=/tmp/x"], "sets hydra.run.dir for each stage"),
    ],
)
def test_self_train_refuses_settings_it_makes_per_stage(
    data_with_unlabeled: Path, tmp_path: Path, args: list[str], fragment: str
) -> None:
    """Hydra's last value wins: `-- seed=7` would give every teacher and the student seed 7 (identical
    teachers), `-- data=synthetic` would train on other data than --data names. Refused before any work."""
    out = tmp_path / "out"
    proc = run_script(SELF_TRAIN, "--data", str(data_with_unlabeled), "--out", str(out), *args)
    assert proc.returncode == 2 and fragment in proc.stderr and not out.exists()


def test_the_script_needs_an_unsupervised_split(tmp_path: Path) -> None:
    data = tmp_path / "imdb"
    write_parquet_dir(data, {"train": make_reviews(20, seed=1), "test": make_reviews(20, seed=2)})
    fake = tmp_path / "x.ckpt"
    fake.write_bytes(b"")
    proc = run_script(SCRIPT, "--data", str(data), "--out", str(tmp_path / "s.parquet"), str(fake))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: no unsupervised-*.parquet, unsupervised.parquet, .csv or .jsonl in {data} "
        "(and no aclImdb/unsupervised/ tree): put the unsupervised split there or point --data elsewhere"
    ]
    assert not (tmp_path / "s.parquet").exists()


def test_the_student_experiment_needs_its_soft_labels(data_with_unlabeled: Path, tmp_path: Path) -> None:
    proc = run_module(
        "seqsent.train", "experiment=student", f"data.path={data_with_unlabeled}",
        f"hydra.run.dir={tmp_path / 'run'}",
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: this recipe trains on soft labels: pass data.soft_labels=<the file scripts/soft_label.py wrote>"
    )
    assert not list((tmp_path / "run").glob("checkpoints/*"))


def test_soft_targets_train_through_bce_and_count_as_their_rounded_label() -> None:
    from seqsent.models import SequenceClassifier

    torch.manual_seed(0)
    encoder = {"name": "lstm", "hidden_size": 8, "bidirectional": False}
    model = SequenceClassifier(vocab_size=50, embed_dim=8, encoder=encoder, bigram_buckets=0)
    batch = {
        "tokens": torch.randint(2, 50, (4, 6)),
        "lengths": torch.full((4,), 6),
        "labels": torch.tensor([0.2, 0.7, 1.0, 0.0]),
    }
    loss, probs, target = model._shared_step(batch)
    assert target.tolist() == [0, 1, 1, 0]
    logits = torch.logit(probs.double()).float()
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, batch["labels"])
    assert loss.item() == pytest.approx(expected.item(), abs=1e-5)
