"""scripts/ensemble.py averages class probabilities of multi-class checkpoints; scripts/soft_label.py refuses them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import TINY_BIGRAMS, run_module, run_script, write_topics
from torchmetrics.functional.classification import multiclass_accuracy, multiclass_f1_score

from seqsent.checkpoint import load_classifier
from seqsent.data.sources import load_splits
from seqsent.predict import predict_texts

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """Two 3-class checkpoints (cnn and nbow) and one 2-class checkpoint."""
    root = tmp_path_factory.mktemp("multiclass")
    write_topics(root / "three", columns=("text", "label"), names=False)
    tiny = ["data.vocab_size=200", "data.batch_size=16", "model.embed_dim=16", TINY_BIGRAMS, "trainer.max_epochs=2"]
    setups = [
        (f"data.path={root / 'three'}", "model/encoder=cnn"),
        (f"data.path={root / 'three'}", "model/encoder=nbow"),
        ("data=synthetic", "data.n_train=200", "data.n_test=40", "model/encoder=nbow"),
    ]
    ckpts = []
    for i, setup in enumerate(setups):
        proc = run_module(
            "seqsent.train",
            *setup,
            *tiny,
            f"hydra.run.dir={root / f'run{i}'}",
            env={"SEQSENT_CACHE_DIR": str(root / "cache")},
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        ckpts.append(json.loads((root / f"run{i}" / "metrics.json").read_text())["best_ckpt"])
    return root, ckpts


def test_the_ensemble_averages_class_probabilities(runs: tuple[Path, list[str]]) -> None:
    root, ckpts = runs
    proc = run_script(SCRIPTS / "ensemble.py", "--data", str(root / "three"), *ckpts[:2])
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    test = load_splits(str(root / "three"), ("test",))["test"]
    probs = torch.stack([torch.tensor(predict_texts(load_classifier(c), test.texts)) for c in ckpts[:2]]).mean(0)
    labels = torch.from_numpy(test.labels)
    assert probs.shape == (60, 3) and set(result["ensemble"]) == {"test/acc", "test/f1"}
    accuracy = float(multiclass_accuracy(probs, labels, 3, average="micro"))
    assert result["ensemble"]["test/acc"] == pytest.approx(accuracy)
    assert result["ensemble"]["test/f1"] == pytest.approx(float(multiclass_f1_score(probs, labels, 3, average="macro")))


def test_members_of_other_class_counts_are_refused(runs: tuple[Path, list[str]]) -> None:
    root, ckpts = runs
    proc = run_script(SCRIPTS / "ensemble.py", "--data", str(root / "three"), ckpts[0], ckpts[2])
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{ckpts[2]} classifies 2 classes but {ckpts[0]} 3: ensemble models of one dataset" in proc.stderr


def test_soft_labels_refuse_a_multiclass_teacher(runs: tuple[Path, list[str]], tmp_path: Path) -> None:
    root, ckpts = runs
    (root / "three" / "unsupervised.csv").write_text("text,label\nwhat is a cat,-1\n")
    out = tmp_path / "soft.parquet"
    proc = run_script(SCRIPTS / "soft_label.py", "--data", str(root / "three"), "--out", str(out), ckpts[0])
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "classifies 3 classes: soft labels (one probability per review) are for two-class teachers" in proc.stderr
    assert not out.exists()
