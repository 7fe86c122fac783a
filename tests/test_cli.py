"""End to end through the real entry points: train (Hydra) -> checkpoint -> eval -> predict."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import TINY_BIGRAMS, run_module

from seqsent.checkpoint import load_classifier
from seqsent.data.synthetic import make_reviews
from seqsent.predict import predict_sorted, predict_texts
from seqsent.predict import run as predict_main

SMALL = [
    "data=synthetic",
    "data.n_train=240",
    "data.n_test=80",
    "data.vocab_size=200",
    "data.batch_size=16",
    "model.encoder.hidden_size=16",
    TINY_BIGRAMS,
    "model.embed_dim=16",
    "model.scheduler=none",  # the resume test extends the run, which a one-cycle schedule refuses
]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("train")
    env = {"SEQSENT_CACHE_DIR": str(root / "cache"), "SEQSENT_OUTPUT_DIR": str(root / "runs")}
    proc = run_module(
        "seqsent.train",
        *SMALL,
        "trainer.max_epochs=2",
        "trainer.limit_train_batches=5",
        "trainer.log_every_n_steps=1",
        f"hydra.run.dir={root / 'run'}",
        env=env,
        cwd=root,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "== seqsent run finished ==" in proc.stdout
    return root / "run"


def test_train_writes_checkpoints_tensorboard_and_metrics(trained_run: Path) -> None:
    metrics = json.loads((trained_run / "metrics.json").read_text())
    for key in (
        "val/acc_best",
        "test/acc",
        "test/loss",
        "test/f1",
        "test/auroc",
        "epochs",
        "train_seconds",
        "best_ckpt",
    ):
        assert key in metrics
    assert metrics["epochs"] == 2 and 0.0 <= metrics["test/acc"] <= 1.0
    assert Path(metrics["best_ckpt"]).is_file() and (trained_run / "checkpoints" / "last.ckpt").is_file()
    events = list((trained_run / "tensorboard").glob("events.out.tfevents.*"))
    assert events
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = set()
    for event in events:
        acc = EventAccumulator(str(event))
        acc.Reload()
        tags |= set(acc.Tags()["scalars"])
    assert {"train/loss", "train/acc", "val/loss", "val/acc", "val/acc_best", "test/acc", "test/auroc"} <= tags
    assert (trained_run / ".hydra" / "config.yaml").is_file()


def test_checkpoint_loads_weights_only_and_carries_the_vocabulary(trained_run: Path) -> None:
    ckpt = torch.load(trained_run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert isinstance(ckpt["seqsent_preprocessing"]["tokenizer_json"], str)
    hparams = dict(ckpt["hyper_parameters"])
    encoder = hparams.pop("encoder")  # settings as plain values, the encoder's a plain dict of them
    assert type(encoder) is dict and encoder["name"] == "lstm" and hparams["num_classes"] == 2
    assert all(isinstance(v, (int, float, str, bool, type(None))) for v in [*hparams.values(), *encoder.values()])
    model = load_classifier(trained_run / "checkpoints" / "last.ckpt")
    probs = predict_texts(model, ["excellent superb loved it", "awful boring worst waste"])
    assert all(0.0 <= p <= 1.0 for p in probs)


def test_eval_reproduces_the_test_metrics(trained_run: Path, tmp_path: Path) -> None:
    metrics = json.loads((trained_run / "metrics.json").read_text())
    cache = trained_run.parent / "cache"
    proc = run_module(
        "seqsent.eval",
        f"ckpt_path={metrics['best_ckpt']}",
        *SMALL[:3],
        f"hydra.run.dir={tmp_path / 'ev'}",
        env={"SEQSENT_CACHE_DIR": str(cache)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    evaluated = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert evaluated["test/acc"] == pytest.approx(metrics["test/acc"], abs=1e-6)


def test_eval_without_data_settings_tests_on_the_data_the_run_trained_on(trained_run: Path, tmp_path: Path) -> None:
    """No data= or data.* given: the checkpoint's recorded data (here the synthetic reviews, not IMDB,
    eval's default); a data.* override applies on top of it."""
    metrics = json.loads((trained_run / "metrics.json").read_text())
    env = {"SEQSENT_CACHE_DIR": str(trained_run.parent / "cache")}
    proc = run_module("seqsent.eval", f"ckpt_path={metrics['best_ckpt']}", f"hydra.run.dir={tmp_path / 'ev'}", env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    evaluated = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert evaluated["test/acc"] == pytest.approx(metrics["test/acc"], abs=1e-6)
    smaller = ["+data.n_test=40", f"hydra.run.dir={tmp_path / 'ev40'}"]
    proc = run_module("seqsent.eval", f"ckpt_path={metrics['best_ckpt']}", *smaller, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((tmp_path / "ev40" / "metrics.json").read_text())["test/acc"] != evaluated["test/acc"]


def test_predict_text_and_file(trained_run: Path, tmp_path: Path) -> None:
    ckpt = trained_run / "checkpoints" / "last.ckpt"
    reviews = tmp_path / "reviews.txt"
    reviews.write_text("a wonderful superb film, loved it\n\nterrible, boring, a waste\n")
    proc = run_module("seqsent.predict", f"ckpt_path={ckpt}", "text=Brilliant, moving, fantastic!", f"file={reviews}")
    assert proc.returncode == 0, proc.stderr
    header, *lines = proc.stdout.strip().splitlines()
    names = load_classifier(ckpt).preprocessing["label_names"]
    assert header == f"p({names[1]})\treview"  # the probability of class 1, named
    assert len(lines) == 3 and all(0.0 <= float(line.split("\t")[0]) <= 1.0 for line in lines)
    assert lines[0].split("\t")[1].startswith("Brilliant")
    assert [line.split("\t")[1][:8] for line in lines[1:]] == ["a wonder", "terrible"]  # the file's, in order
    assert f"note: {reviews}: skipped 1 blank line(s) (2)" in proc.stderr  # said: outputs no longer line up


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["ckpt_path=/nope.ckpt", "text=hi"], "does not exist"),
        (["ckpt_path=CKPT", "text="], "empty"),
        (["ckpt_path=CKPT", "file=/nope.txt"], "does not exist"),
        (["ckpt_path=CKPT"], "text="),
        (["ckpt_path=CKPT", "txt=oops"], "unknown argument"),
        (["ckpt_path=NOTCKPT", "text=hi"], "not a readable checkpoint"),
        (["ckpt_path=CKPT", "text=hi", "device=gpu"], "device=gpu is not a device"),
        (["ckpt_path=DIR", "text=hi"], "checkpoints is a directory"),
        (["ckpt_path=", "text=hi"], "checkpoint path is empty"),
        (["ckpt_path=CKPT", "file=DIR"], "checkpoints is a directory"),
    ],
)
def test_predict_errors_are_one_line(
    trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture, args: list[str], fragment: str
) -> None:
    bogus = tmp_path / "bogus.ckpt"
    bogus.write_text("hello")
    ckpt, folder = trained_run / "checkpoints" / "last.ckpt", trained_run / "checkpoints"
    args = [a.replace("NOTCKPT", str(bogus)).replace("CKPT", str(ckpt)).replace("DIR", str(folder)) for a in args]
    with pytest.raises(SystemExit) as info:
        predict_main(args)
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert err.strip().count("\n") == 0 and fragment in err and err.startswith("error: ")


def test_predictions_do_not_depend_on_batching_or_order(trained_run: Path) -> None:
    model = load_classifier(trained_run / "checkpoints" / "last.ckpt")
    texts = make_reviews(23, seed=5)[0] + ["", "great"]
    whole = predict_texts(model, texts)
    np.testing.assert_allclose(predict_texts(model, texts, batch_size=4), whole, atol=1e-6)
    np.testing.assert_allclose(predict_sorted(model, texts, batch_size=4), whole, atol=1e-6)


def test_train_refuses_a_directory_holding_another_run(trained_run: Path) -> None:
    before = files_of(trained_run)
    proc = run_module("seqsent.train", *SMALL, "model/encoder=gru", f"hydra.run.dir={trained_run}")
    assert proc.returncode == 2 and "already holds a run" in proc.stderr
    assert files_of(trained_run) == before  # the run's .hydra record too: the refused command wrote none


def test_eval_refuses_a_training_run_directory(trained_run: Path) -> None:
    before = files_of(trained_run)
    ckpt = trained_run / "checkpoints" / "last.ckpt"
    proc = run_module("seqsent.eval", f"ckpt_path={ckpt}", "data=synthetic", f"hydra.run.dir={trained_run}")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr[-2000:]
    assert "already holds a run or evaluation (metrics.json, checkpoints, tensorboard)" in proc.stderr
    assert files_of(trained_run) == before


def test_bad_config_value_is_one_line(tmp_path: Path) -> None:
    proc = run_module("seqsent.train", *SMALL, "data.max_len=0", f"hydra.run.dir={tmp_path / 'r'}")
    assert proc.returncode == 2 and "max_len" in proc.stderr and "Traceback" not in proc.stderr


def test_fast_dev_run_without_checkpoint_still_tests(tmp_path: Path) -> None:
    proc = run_module("seqsent.train", *SMALL, "trainer.fast_dev_run=true", f"hydra.run.dir={tmp_path / 'r'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert metrics["best_ckpt"] is None and "test/acc" in metrics


def test_resume_from_last_checkpoint_continues(trained_run: Path, tmp_path: Path) -> None:
    env = {"SEQSENT_CACHE_DIR": str(trained_run.parent / "cache")}
    proc = run_module(
        "seqsent.train",
        *SMALL,
        "trainer.max_epochs=3",
        "trainer.limit_train_batches=5",
        f"ckpt_path={trained_run / 'checkpoints' / 'last.ckpt'}",
        f"hydra.run.dir={tmp_path / 'resumed'}",
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "resumed" / "metrics.json").read_text())
    assert metrics["epochs"] == 3 and metrics["global_steps"] == 15


def test_resuming_with_other_model_settings_is_refused(trained_run: Path, tmp_path: Path) -> None:
    other = [a if a != "model.encoder.hidden_size=16" else "model.encoder.hidden_size=32" for a in SMALL]
    ckpt = trained_run / "checkpoints" / "last.ckpt"
    proc = run_module("seqsent.train", *other, f"ckpt_path={ckpt}", f"hydra.run.dir={tmp_path / 'r'}")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "trained with other settings: model.encoder.hidden_size=32 (checkpoint: 16)" in proc.stderr
    assert not (tmp_path / "r" / "metrics.json").exists()


def test_resuming_a_one_cycle_run_for_longer_is_refused(tmp_path: Path) -> None:
    env = {"SEQSENT_CACHE_DIR": str(tmp_path / "cache")}
    base = [*SMALL[:-1], "model.scheduler=onecycle", "trainer.limit_train_batches=3"]
    first = run_module("seqsent.train", *base, "trainer.max_epochs=1", f"hydra.run.dir={tmp_path / 'r'}", env=env)
    assert first.returncode == 0, first.stderr[-2000:]
    ckpt = tmp_path / "r" / "checkpoints" / "last.ckpt"
    before = files_of(tmp_path / "r")
    resume = [f"ckpt_path={ckpt}", f"hydra.run.dir={tmp_path / 'r'}"]
    proc = run_module("seqsent.train", *base, "trainer.max_epochs=2", *resume, env=env)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "one-cycle schedule ends after 4 steps but this run has 6" in proc.stderr.strip().splitlines()[-1]
    # refused inside fit, before a step: no command record, no TensorBoard file (no HPARAMS zeros) left
    assert files_of(tmp_path / "r") == before


def files_of(run: Path) -> dict[str, bytes]:
    """Every file under a run directory with its bytes, but Hydra's logs (`<command>.log`: every
    command run with this directory logs there, a refused one too)."""
    files = sorted(p for p in run.rglob("*") if p.is_file() and p.suffix != ".log")
    return {str(p.relative_to(run)): p.read_bytes() for p in files}


def test_resuming_a_finished_run_is_refused_and_changes_nothing(trained_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    before = files_of(run)
    env = {"SEQSENT_CACHE_DIR": str(trained_run.parent / "cache")}
    same = [*SMALL, "trainer.max_epochs=2", "trainer.limit_train_batches=5", "trainer.log_every_n_steps=1"]
    for ckpt in (f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}", "ckpt_path=last"):
        proc = run_module("seqsent.train", *same, ckpt, f"hydra.run.dir={run}", env=env)
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert proc.stderr.count("\n") == 1 and "has finished training (2 epochs, 10 steps" in proc.stderr
        assert files_of(run) == before  # metrics.json, checkpoints, TensorBoard and .hydra as they were


def test_bf16_mixed_with_gradient_clipping_trains(tmp_path: Path) -> None:
    """Mixed precision (as `trainer=gpu` uses) with clipping: Lightning refuses a fused optimizer there,
    so the classifier must pick another kernel. bf16 autocast runs on the CPU too."""
    env = {"SEQSENT_CACHE_DIR": str(tmp_path / "cache")}
    overrides = ["trainer.precision=bf16-mixed", "trainer.gradient_clip_val=1.0", "trainer.limit_train_batches=3"]
    proc = run_module(
        "seqsent.train", *SMALL, *overrides, "trainer.max_epochs=1", f"hydra.run.dir={tmp_path / 'r'}", env=env
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert metrics["global_steps"] == 3 and 0.0 <= metrics["test/acc"] <= 1.0


def test_fp16_mixed_trains(tmp_path: Path) -> None:
    """16-mixed (fp16 autocast with loss scaling; it runs on the CPU too) through the entry point."""
    env = {"SEQSENT_CACHE_DIR": str(tmp_path / "cache")}
    overrides = ["trainer.precision=16-mixed", "trainer.gradient_clip_val=null", "trainer.limit_train_batches=3"]
    proc = run_module(
        "seqsent.train", *SMALL, *overrides, "trainer.max_epochs=1", f"hydra.run.dir={tmp_path / 'r'}", env=env
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert metrics["global_steps"] == 3
    assert "precision: 16-mixed" in (tmp_path / "r" / ".hydra" / "config.yaml").read_text()
