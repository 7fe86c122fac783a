"""scripts/ensemble.py: each member reads the test reviews with its own vocabulary; the mean is tested."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import TINY_BIGRAMS, run_module, run_script
from torchmetrics.functional.classification import binary_accuracy, binary_auroc

from seqsent.checkpoint import load_classifier
from seqsent.data.sources import load_splits
from seqsent.data.synthetic import make_reviews, write_parquet_dir
from seqsent.predict import predict_texts

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "ensemble.py"


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    root = tmp_path_factory.mktemp("ensemble")
    data = root / "imdb"
    write_parquet_dir(data, {"train": make_reviews(300, seed=1), "test": make_reviews(160, seed=2)})
    runs = []
    for seed, vocab, padding in ((0, 120, "pre"), (1, 400, "post")):  # different vocabularies and padding
        run_dir = root / f"run{seed}"
        proc = run_module(
            "seqsent.train",
            f"data.path={data}",
            f"data.vocab_size={vocab}",
            f"data.padding={padding}",
            "data.batch_size=16",
            "model.embed_dim=16",
            "model.encoder.hidden_size=16",
            TINY_BIGRAMS,
            "trainer.max_epochs=2",
            f"seed={seed}",
            f"hydra.run.dir={run_dir}",
            env={"SEQSENT_CACHE_DIR": str(root / "cache")},
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs.append(json.loads((run_dir / "metrics.json").read_text()))
    return data, runs


def test_members_match_their_runs_and_the_mean_is_written(two_runs: tuple[Path, list[dict]], tmp_path: Path) -> None:
    data, runs = two_runs
    out = tmp_path / "ens.json"
    proc = run_script(SCRIPT, "--data", str(data), runs[0]["best_ckpt"], runs[1]["best_ckpt"], "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert result == json.loads(out.read_text())
    assert result["reviews"] == 160
    for member, run in zip(result["members"], runs, strict=True):
        # the same accuracy as the run's own test (its data module): vocabulary, padding and order restored
        assert member["test/acc"] == pytest.approx(run["test/acc"], abs=1e-6)
        assert member["test/auroc"] == pytest.approx(run["test/auroc"], abs=1e-4)
    # the ensemble scores the mean of the members' probabilities, computed here review by review
    test = load_splits(str(data), ("test",))["test"]
    mean = torch.tensor([predict_texts(load_classifier(Path(run["best_ckpt"])), test.texts) for run in runs]).mean(0)
    labels = torch.from_numpy(test.labels)
    assert result["ensemble"]["test/acc"] == pytest.approx(float(binary_accuracy(mean, labels)), abs=1e-6)
    assert result["ensemble"]["test/auroc"] == pytest.approx(float(binary_auroc(mean, labels)), abs=1e-5)
    assert "ensemble of 2: test/acc" in proc.stderr


def test_a_checkpoint_with_itself_scores_as_itself(two_runs: tuple[Path, list[dict]]) -> None:
    data, runs = two_runs
    proc = run_script(SCRIPT, "--data", str(data), runs[1]["best_ckpt"], runs[1]["best_ckpt"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    member = {k: v for k, v in result["members"][0].items() if k != "ckpt"}
    assert result["ensemble"] == pytest.approx(member)


def test_bad_input_is_one_line_and_overwrites_nothing(two_runs: tuple[Path, list[dict]], tmp_path: Path) -> None:
    data, runs = two_runs
    missing = run_script(SCRIPT, "--data", str(data), str(tmp_path / "nope.ckpt"))
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [
        f"error: checkpoint {tmp_path / 'nope.ckpt'} does not exist: pass the .ckpt files of finished runs"
    ]
    out = tmp_path / "kept.json"
    out.write_text("earlier result")
    again = run_script(SCRIPT, "--data", str(data), runs[0]["best_ckpt"], "--out", str(out))
    assert again.returncode == 2 and "exists: pass a new --out path" in again.stderr
    assert out.read_text() == "earlier result"
    under_file = run_script(SCRIPT, "--data", str(data), runs[0]["best_ckpt"], "--out", str(out / "x.json"))
    assert under_file.returncode == 2 and f"{out} is a file, not a directory" in under_file.stderr
    assert "[1/1]" not in under_file.stderr  # refused before scoring anything
    zero = run_script(SCRIPT, "--data", str(data), runs[0]["best_ckpt"], "--batch-size", "0")
    assert zero.returncode == 2 and zero.stderr.strip().splitlines() == ["error: --batch-size 0: use >= 1, e.g. 256"]
