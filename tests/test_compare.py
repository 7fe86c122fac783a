"""seqsent.compare on a hand-made sweep: statistics, failed/incomplete runs, files and errors."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from seqsent.analysis.runs import COMPLETED, FAILED, INCOMPLETE
from seqsent.analysis.stats import describe, t_critical
from seqsent.compare import load_runs, summarize
from seqsent.compare import run as compare_main

# (job dir, cell, bidirectional, seed, test/acc, val/acc_best, train_seconds, status)
RUNS = [
    ("0_model=rnn,seed=0", "rnn", False, 0, 0.60, 0.62, 10.0, COMPLETED),
    ("1_model=rnn,seed=1", "rnn", False, 1, 0.64, 0.66, 12.0, COMPLETED),
    ("2_model=lstm,seed=0", "lstm", False, 0, 0.80, 0.81, 30.0, COMPLETED),
    ("3_model=lstm,seed=1", "lstm", False, 1, 0.84, 0.83, 32.0, COMPLETED),
    ("4_model=lstm,seed=2", "lstm", False, 2, 0.85, 0.88, 34.0, COMPLETED),
    ("5_model=gru,seed=0", "gru", False, 0, None, None, None, FAILED),
    ("6_model=gru,seed=1", "gru", False, 1, None, None, None, INCOMPLETE),
    ("7_gru_seed0", "gru", True, 0, 0.90, 0.91, 50.0, COMPLETED),
]
PARAMS = {"rnn": 1000, "lstm": 4000, "gru": 3000}
ERROR = "CUDA out of memory | tried to allocate 2 GiB"


def val_curve(index: int, epochs: int) -> list[float]:
    return [0.5 + 0.01 * index + 0.05 * e for e in range(epochs)]


def write_events(run_dir: Path, values: list[float], first_epoch: int = 0) -> None:
    """val/acc and epoch at step (epoch+1)*10-1, as Lightning logs them."""
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"))
    for offset, value in enumerate(values):
        epoch = first_epoch + offset
        writer.add_scalar("epoch", epoch, (epoch + 1) * 10 - 1)
        writer.add_scalar("val/acc", value, (epoch + 1) * 10 - 1)
        writer.add_scalar("train/loss", 1.0 / (epoch + 1), (epoch + 1) * 10 - 1)
    writer.close()


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sweep") / "2026-01-01" / "10-00-00_abc123"
    for index, (name, cell, bidi, seed, test_acc, val_best, seconds, status) in enumerate(RUNS):
        run_dir = root / name
        (run_dir / ".hydra").mkdir(parents=True)
        config = {
            "seed": seed,
            "run_name": "${model.cell}",
            "model": {"cell": cell, "bidirectional": bidi, "hidden_size": 16, "vocab_size": "${data.vocab_size}"},
            "data": {"vocab_size": 200},
            "trainer": {"max_epochs": 3, "default_root_dir": "${hydra:runtime.output_dir}"},
        }
        (run_dir / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
        overrides = [f"model={cell}", *(["model.bidirectional=true"] if bidi else []), f"seed={seed}"]
        overrides.append("trainer.max_epochs=3")
        (run_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
        if status == COMPLETED:
            write_events(run_dir, val_curve(index, 2))
            write_events(run_dir, val_curve(index, 3)[2:], first_epoch=2)  # a second file, as after a resume
            metrics = {
                "test/acc": test_acc,
                "val/acc_best": val_best,
                "train_seconds": seconds,
                "epochs": 3,
                "num_parameters": PARAMS[cell] * (2 if bidi else 1),
                "best_ckpt": str(run_dir / "checkpoints" / "best.ckpt"),
            }
            (run_dir / "metrics.json").write_text(json.dumps(metrics))
        elif status == FAILED:
            (run_dir / "error.txt").write_text(ERROR + "\n")
        else:
            write_events(run_dir, val_curve(index, 2))
    return root


def read_csv(path: Path) -> dict[str, dict[str, str]]:
    with path.open() as fh:
        return {row[next(iter(row))]: row for row in csv.DictReader(fh)}


@pytest.fixture(scope="module")
def compared(sweep: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report of the sweep written elsewhere with out=."""
    out = tmp_path_factory.mktemp("report")
    compare_main([str(sweep), f"out={out}"])
    return out


def test_summary_csv_matches_hand_computed_statistics(compared: Path) -> None:
    rows = read_csv(compared / "comparison.csv")
    assert list(rows) == ["rnn", "lstm", "gru", "bi-gru"]
    rnn, lstm, gru, bigru = rows["rnn"], rows["lstm"], rows["gru"], rows["bi-gru"]
    # rnn test/acc [0.60, 0.64]: mean 0.62, std 0.02*sqrt(2), t(0.975, 1) = 12.7062
    assert rnn["runs"] == "2" and rnn["test_acc_n"] == "2"
    assert float(rnn["test_acc_mean"]) == pytest.approx(0.62)
    assert float(rnn["test_acc_std"]) == pytest.approx(0.0282843, abs=1e-6)
    assert float(rnn["test_acc_ci95_low"]) == pytest.approx(0.365876, abs=1e-5)
    assert float(rnn["test_acc_ci95_high"]) == pytest.approx(0.874124, abs=1e-5)
    assert float(rnn["train_seconds_mean"]) == pytest.approx(11.0)
    # lstm test/acc [0.80, 0.84, 0.85]: mean 0.83, std sqrt(0.0014/2), t(0.975, 2) = 4.3027
    assert float(lstm["test_acc_mean"]) == pytest.approx(0.83)
    assert float(lstm["test_acc_std"]) == pytest.approx(0.0264575, abs=1e-6)
    assert float(lstm["test_acc_ci95_low"]) == pytest.approx(0.764276, abs=1e-5)
    assert float(lstm["test_acc_ci95_high"]) == pytest.approx(0.895724, abs=1e-5)
    # lstm val/acc_best [0.81, 0.83, 0.88]: mean 0.84, std 0.0360555
    assert float(lstm["val_acc_best_mean"]) == pytest.approx(0.84)
    assert float(lstm["val_acc_best_std"]) == pytest.approx(0.0360555, abs=1e-6)
    assert float(lstm["val_acc_best_ci95_low"]) == pytest.approx(0.750433, abs=1e-5)
    assert float(lstm["val_acc_best_ci95_high"]) == pytest.approx(0.929567, abs=1e-5)
    assert lstm["num_parameters_min"] == lstm["num_parameters_max"] == "4000"
    # gru: no completed run, one failed, one incomplete; bi-gru: one run, so no std / CI
    assert (gru["runs"], gru["failed"], gru["incomplete"], gru["test_acc_mean"]) == ("0", "1", "1", "")
    assert bigru["runs"] == "1" and float(bigru["test_acc_mean"]) == pytest.approx(0.90)
    assert bigru["test_acc_std"] == bigru["test_acc_ci95_low"] == bigru["test_acc_ci95_high"] == ""
    assert rnn["differ_in"] == "seed"


def test_runs_csv_and_markdown_list_failed_and_incomplete_runs(compared: Path) -> None:
    out = compared
    runs = read_csv(out / "comparison_runs.csv")
    assert len(runs) == len(RUNS)
    assert runs["5_model=gru,seed=0"]["status"] == "failed" and runs["5_model=gru,seed=0"]["reason"] == ERROR
    assert runs["6_model=gru,seed=1"]["status"] == "incomplete"
    assert "still running or killed" in runs["6_model=gru,seed=1"]["reason"]
    assert runs["7_gru_seed0"]["architecture"] == "bi-gru"
    assert float(runs["2_model=lstm,seed=0"]["test_acc"]) == pytest.approx(0.80)
    md = (out / "comparison.md").read_text()
    assert "| rnn | 2 | 0 | 0.6200 ± 0.0283 | [0.3659, 0.8741] |" in md
    assert "| bi-gru | 1 | 0 | 0.9000 ± n/a | n/a |" in md
    assert "| gru | 0 | 1 failed, 1 incomplete | n/a | n/a |" in md
    assert "failed: CUDA out of memory \\| tried to allocate 2 GiB" in md
    assert "incomplete: no metrics.json: still running or killed; last validation at epoch 2" in md
    assert all(f"`{name}" in md for name in ("0_model=rnn", "5_model=gru", "6_model=gru"))


def test_png_is_written_and_not_into_the_sweep_with_out(compared: Path, sweep: Path) -> None:
    png = compared / "comparison.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert not (sweep / "comparison.md").exists()


def test_load_runs_reads_curves_across_event_files(sweep: Path) -> None:
    runs = {r.name: r for r in load_runs(sweep)}
    lstm = runs["2_model=lstm,seed=0"]
    assert [e for e, _ in lstm.val_curve] == [1.0, 2.0, 3.0]
    assert [v for _, v in lstm.val_curve] == pytest.approx(val_curve(2, 3))
    assert lstm.seed == 0 and lstm.arch == "lstm" and lstm.best_ckpt is None  # no checkpoint file on disk
    assert runs["6_model=gru,seed=1"].val_curve and runs["5_model=gru,seed=0"].val_curve == []
    summaries = summarize(list(runs.values()))
    assert [s.arch for s in summaries] == ["rnn", "lstm", "gru", "bi-gru"]


def test_parent_dir_finds_runs_of_every_sweep(sweep: Path, tmp_path: Path) -> None:
    runs = load_runs(sweep.parent.parent, curves=False)
    assert len(runs) == len(RUNS) and all(r.name.startswith("2026-01-01/10-00-00_abc123/") for r in runs)
    single = load_runs(sweep / "0_model=rnn,seed=0", curves=False)
    assert len(single) == 1 and single[0].status == COMPLETED


def test_command_writes_into_the_sweep_and_prints_the_table(sweep: Path, tmp_path: Path) -> None:
    copy = tmp_path / "sweep"
    shutil.copytree(sweep, copy)
    proc = subprocess.run(
        [sys.executable, "-m", "seqsent.compare", str(copy)], capture_output=True, text=True, env=dict(os.environ)
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| lstm | 3 | 0 | 0.8300 ± 0.0265 | [0.7643, 0.8957] |" in proc.stdout
    assert "5_model=gru,seed=0: failed: CUDA out of memory" in proc.stdout
    assert all((copy / f).is_file() for f in ("comparison.md", "comparison.csv", "comparison_runs.csv"))
    assert (copy / "comparison.png").is_file()


@pytest.mark.parametrize(
    "make,fragment",
    [
        (lambda p: [str(p / "missing")], "does not exist"),
        (lambda p: [str(p)], "holds no runs"),
        (lambda p: [str(p / "file.txt")], "is not a directory"),
        (lambda p: [], "exactly one sweep directory"),
        (lambda p: [str(p), "outt=x"], "unknown argument"),
        (lambda p: [str(p.parent / "sweep"), f"out={p / 'file.txt'}"], "is a file"),
    ],
)
def test_errors_are_one_line_with_exit_code_2(
    tmp_path: Path, capsys: pytest.CaptureFixture, make: object, fragment: str
) -> None:
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "file.txt").write_text("x")
    (tmp_path / "sweep" / "0_lstm_seed0" / ".hydra").mkdir(parents=True)
    (tmp_path / "sweep" / "0_lstm_seed0" / ".hydra" / "config.yaml").write_text("model: {cell: lstm}\n")
    with pytest.raises(SystemExit) as info:
        compare_main(make(tmp_path / "empty"))  # type: ignore[operator]
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert err.startswith("error: ") and err.strip().count("\n") == 0 and fragment in err


def test_missing_dir_exit_code_through_the_module(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "seqsent.compare", str(tmp_path / "nope")], capture_output=True, text=True
    )
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr


def test_t_table_and_one_run_statistics() -> None:
    # Student t 0.975 quantiles (scipy.stats.t.ppf(0.975, df)), written out so the check never skips
    reference = {1: 12.706205, 2: 4.302653, 3: 3.182446, 5: 2.570582, 10: 2.228139, 30: 2.042272, 120: 1.979930}
    for df, quantile in reference.items():
        assert t_critical(df) == pytest.approx(quantile, abs=2e-4)
    one = describe([0.7])
    assert (one.n, one.mean, one.std, one.ci_low, one.ci_high) == (1, 0.7, None, None, None)
    assert describe([]).mean is None


def test_accuracy_intervals_stay_within_zero_and_one(tmp_path: Path) -> None:
    """Two far-apart seeds make a Student-t interval wider than accuracy's range ([-2.4, 3.9] here):
    the report and its CSV clip it to [0, 1]; an interval inside the range is left as it is."""
    root = tmp_path / "sweep"
    for seed, acc in enumerate((0.50, 0.99)):
        run_dir = root / f"{seed}_lstm_seed{seed}"
        (run_dir / ".hydra").mkdir(parents=True)
        config = {"seed": seed, "model": {"cell": "lstm", "bidirectional": False}}
        (run_dir / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
        (run_dir / "metrics.json").write_text(json.dumps({"test/acc": acc, "val/acc_best": acc}))
    [lstm] = compare_main([str(root), f"out={tmp_path / 'report'}"])
    for stat in (lstm.test_acc, lstm.val_acc_best):
        assert (stat.ci_low, stat.ci_high) == (0.0, 1.0) and stat.mean == pytest.approx(0.745)
    row = read_csv(tmp_path / "report" / "comparison.csv")["lstm"]
    assert (float(row["test_acc_ci95_low"]), float(row["test_acc_ci95_high"])) == (0.0, 1.0)
    assert "[0.0000, 1.0000]" in (tmp_path / "report" / "comparison.md").read_text()
    unclipped = describe([-5.0, 5.0])  # without bounds (not an accuracy) the interval is the t interval
    assert unclipped.ci_low == pytest.approx(-5 * t_critical(1))  # std 5*sqrt(2), over sqrt(2) runs
    inside = describe([0.80, 0.82, 0.84], (0.0, 1.0))
    assert inside.ci_low == pytest.approx(0.82 - t_critical(2) * 0.02 / 3**0.5)


def test_runs_that_differ_in_a_swept_setting_are_separate_rows(tmp_path: Path) -> None:
    """`model.lr=1e-4,1e-2 seed=0,1`: two rows of two seeds each, not one row of four whose spread
    and confidence interval would mix two learning rates."""
    root = tmp_path / "sweep"
    accs = {("0.0001", 0): 0.50, ("0.0001", 1): 0.52, ("0.01", 0): 0.80, ("0.01", 1): 0.84}
    for job, ((lr, seed), acc) in enumerate(accs.items()):
        run_dir = root / f"{job}_lstm_seed{seed}"
        (run_dir / ".hydra").mkdir(parents=True)
        config = {"seed": seed, "model": {"cell": "lstm", "bidirectional": False, "lr": float(lr)}}
        (run_dir / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
        (run_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"model.lr={lr}", f"seed={seed}"]))
        (run_dir / "metrics.json").write_text(json.dumps({"test/acc": acc, "val/acc_best": acc}))
    summaries = {s.arch: s for s in summarize(load_runs(root, curves=False))}
    assert list(summaries) == ["lstm model.lr=0.0001", "lstm model.lr=0.01"]
    assert [summaries[k].completed for k in summaries] == [2, 2]
    assert summaries["lstm model.lr=0.01"].test_acc.mean == pytest.approx(0.82)
    assert summaries["lstm model.lr=0.0001"].test_acc.std == pytest.approx(0.0141421, abs=1e-6)
    compare_main([str(root), f"out={tmp_path / 'report'}"])
    assert set(read_csv(tmp_path / "report" / "comparison.csv")) == set(summaries)


def test_runs_gathered_as_links_are_found_once_and_a_link_loop_ends(sweep: Path, tmp_path: Path) -> None:
    from seqsent.analysis.runs import find_run_dirs

    gathered = tmp_path / "gathered"
    gathered.mkdir()
    for name in ("0_model=rnn,seed=0", "2_model=lstm,seed=0"):
        (gathered / name).symlink_to(sweep / name, target_is_directory=True)
    (gathered / "loop").symlink_to(gathered, target_is_directory=True)  # a link back up
    assert [p.name for p in find_run_dirs(gathered)] == ["0_model=rnn,seed=0", "2_model=lstm,seed=0"]
    assert {run.path.name for run in load_runs(gathered)} == {"0_model=rnn,seed=0", "2_model=lstm,seed=0"}


def write_run(run_dir: Path, model: dict, overrides: list[str], metrics: dict | None) -> None:
    """A run dir as seqsent.train writes it: its config, overrides and (when it finished) metrics.json."""
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"seed": 0, "model": model}))
    (run_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if metrics is not None:
        (run_dir / "metrics.json").write_text(json.dumps(metrics))


def test_runs_are_named_by_encoder_and_ordered_recurrent_then_baselines(tmp_path: Path) -> None:
    """The architecture is `model.encoder.name` (bi- when bidirectional), else `model.cell` (run dirs of
    seqsent before the encoder registry), else the `_target_` class name; `model=X` and
    `model/encoder=X` overrides choose it, so they never split a group. Multi-class runs log no AUROC."""
    root = tmp_path / "sweep"
    multi = {"test/acc": 0.9, "test/f1": 0.8, "val/acc_best": 0.85}  # what a 6-class run logs: no test/auroc
    recurrent = {"init": "${..init}", "hidden_size": 8}
    jobs = [
        ("0", {"encoder": {"name": "nbow"}}, ["model/encoder=nbow"]),
        ("1", {"encoder": {"_target_": "my_lab.encoders.ToyEncoder", "width": 4}}, ["model/encoder=toy"]),
        ("2", {"encoder": {"name": "transformer", "d_model": 8}}, ["model/encoder=transformer"]),
        ("3", {"encoder": {"name": "lstm", "bidirectional": True, **recurrent}, "init": "torch"}, ["model=lstm"]),
        ("4", {"encoder": {"name": "lstm", "bidirectional": True, **recurrent}, "init": "torch"}, []),
        ("5", {"encoder": {"name": "cnn", "widths": [3, 4, 5]}}, ["model/encoder=cnn"]),
        ("6", {"encoder": {"name": "gru", "bidirectional": False, **recurrent}, "init": "torch"}, ["model=gru"]),
        ("7", {"cell": "rnn", "bidirectional": False}, ["model=rnn"]),  # seqsent 0.1
        ("8", {"encoder": {"name": "lstm_scratch"}}, ["model/encoder=lstm_scratch"]),
        ("9", {"encoder": {"name": "cnn", "widths": [3, 4, 5]}}, ["+model/encoder=cnn", "model.encoder.channels=100"]),
    ]
    for job, model, overrides in jobs:
        write_run(root / f"{job}_run", model, [*overrides, f"seed={job}"], {**multi, "test/acc": 0.5 + int(job) / 100})
    runs = load_runs(root, curves=False)
    cnn = ["cnn model.encoder.channels=(default)", "cnn model.encoder.channels=100"]
    order = ["rnn", "bi-lstm", "bi-lstm", "gru", *cnn, "transformer", "nbow"]
    assert [r.arch for r in runs] == [*order, "ToyEncoder", "lstm_scratch"]
    assert [r.test_f1 for r in runs] == [0.8] * len(jobs)
    summaries = {s.arch: s for s in summarize(runs)}
    assert summaries["bi-lstm"].test_acc.n == 2 and summaries["bi-lstm"].test_acc.mean == pytest.approx(0.535)
    assert summaries["gru"].test_f1.mean == pytest.approx(0.8)
    out = tmp_path / "report"
    compare_main([str(root), f"out={out}"])
    row = read_csv(out / "comparison.csv")["bi-lstm"]
    assert (row["test_f1_n"], float(row["test_f1_mean"]), float(row["test_f1_std"])) == ("2", 0.8, 0.0)
    assert read_csv(out / "comparison_runs.csv")["7_run"]["test_f1"] == "0.8"
    md = (out / "comparison.md").read_text()
    assert "| ToyEncoder | 1 | 0 | 0.5100 ± n/a | n/a | 0.8000 ± n/a | n/a | 0.8500 ± n/a |" in md
    assert (out / "comparison.png").stat().st_size > 10_000
