"""Speed benchmark: the script's JSON on tiny synthetic data, clean CUDA errors, and its building blocks.

`benchmarks/` is on the path through pyproject's pytest `pythonpath`, so its package imports as `bench`.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bench
import pytest
import torch
from helpers import run_script as run_script_file

from seqsent.errors import SeqsentError
from seqsent.models.encoders import cpu_lstm_autocast_works

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "benchmark.py"
TOP_KEYS = {
    "prep_seconds_cold",
    "prep_seconds_cached",
    "matmul_gflops",
    "lstm_train_flops_fraction",
    "lstm_layer_flops_fraction",
    "lstm_train_flops_fraction_paired",
    "time_to_86_2",
    "time_to_86_2_recipe",
    "models",
    "device",
    "torch_version",
    "threads",
    "data",
}
RATES = ("train_reviews_per_s", "train_tokens_per_s", "epoch_seconds_estimated", "infer_reviews_per_s", "peak_rss_mb")
TINY = ["--n-reviews", "60", "--vocab-size", "200", "--max-len", "24", "--embed-dim", "8", "--hidden-size", "8"]


def run_script(*args: str) -> subprocess.CompletedProcess:
    return run_script_file(SCRIPT, *args, cwd=SCRIPT.parent.parent, timeout=120)


def test_quick_run_prints_and_writes_the_json(tmp_path: Path) -> None:
    out = tmp_path / "bench" / "cpu.json"
    args = ["--quick", "--skip-accuracy", "--epoch", *TINY, "--threads", "1", "--batches", "2,1", "--out", str(out)]
    proc = run_script(*args)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)  # stdout holds the JSON alone; progress went to stderr
    assert "prep cold" in proc.stderr
    assert not TOP_KEYS - set(result), TOP_KEYS - set(result)
    assert json.loads(out.read_text()) == result
    assert result["data"] == "synthetic" and result["threads"] == 1
    assert result["torch_version"] == torch.__version__ and result["device"].startswith("cpu")
    for key in ("prep_seconds_cold", "prep_seconds_cached", "matmul_gflops", "lstm_train_flops_fraction"):
        assert result[key] > 0, key
    layer = result["lstm_layer_detail"]  # the nn.LSTM layer alone at batch 32 over --max-len steps
    expected = 3 * bench.gate_flops("lstm", 32, 24, 8, 8) / (layer["layer_step_ms"] / 1000) / 1e9
    assert layer["layer_gate_gflops"] == pytest.approx(expected, rel=0.01)  # the JSON keeps 4 digits
    assert result["lstm_layer_flops_fraction"] == pytest.approx(
        layer["layer_gate_gflops"] / result["matmul_gflops"], rel=0.01
    )
    paired = result["lstm_paired_detail"]  # --quick: 2 rounds of 2 steps, the matmul timed before each
    assert len(paired["fractions"]) == len(paired["matmul_gflops"]) == len(paired["train_gate_gflops"]) == 2
    for fraction, matmul, rate in zip(paired["fractions"], paired["matmul_gflops"], paired["train_gate_gflops"]):
        assert fraction == pytest.approx(rate / matmul, rel=0.01)
    assert result["lstm_train_flops_fraction_paired"] == pytest.approx(sum(paired["fractions"]) / 2, rel=0.01)
    assert result["autocast_dtype"] is None and result["matmul_gflops_autocast"] is None  # an fp32 run
    assert result["lstm_train_flops_fraction_autocast"] is None
    assert result["time_to_86_2"] is None and "skipped" in result["time_to_86_2_detail"]["reason"]
    assert result["time_to_86_2_recipe"]["cell"] == "lstm"
    assert set(result["models"]) == {"rnn", "lstm", "gru"}
    assert set(result["lstm_epoch"]) == {"batch_32", "batch_256"}  # --epoch: one real pass, eager on the CPU
    assert result["lstm_epoch"]["batch_32"]["eager"]["reviews"] == 48  # 60 synthetic reviews less validation
    for cell, entries in result["models"].items():
        assert set(entries) == {"batch_32", "batch_256"}, cell
        for name, entry in entries.items():
            assert entry["batch_size"] == int(name.split("_")[1])
            assert entry["train_batches"] == (2 if name == "batch_32" else 1)
            for key in RATES:
                assert entry[key] > 0, (cell, name, key)


def test_bf16_run_divides_by_the_bf16_matmul_rate_too() -> None:
    """Under bf16 autocast the kernels run in bf16: the *_autocast fractions compare them with a bf16
    matmul, while lstm_train_flops_fraction keeps the fp32 rate as its denominator. On a CPU whose
    oneDNN has no bf16 LSTM kernel (no AVX512) the run is refused instead of timing an fp32 LSTM."""
    proc = run_script("--quick", "--skip-accuracy", *TINY, "--threads", "1", "--batches", "2,1", "--bf16")
    if not cpu_lstm_autocast_works(torch.bfloat16):
        assert proc.returncode == 2 and proc.stdout == ""
        assert proc.stderr.count("\n") == 1 and "no bf16 LSTM kernel" in proc.stderr, proc.stderr
        return
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["autocast_dtype"] == "bfloat16" and result["notes"]["precision"] == "bf16-mixed"
    assert result["matmul_gflops_autocast"] > 0
    train_rate = result["models"]["lstm"]["batch_32"]["train_gate_gflops"]
    for denominator, key in (("matmul_gflops", ""), ("matmul_gflops_autocast", "_autocast")):
        fraction = train_rate / result[denominator]
        assert result[f"lstm_train_flops_fraction{key}"] == pytest.approx(fraction, rel=0.01)
    layer_rate = result["lstm_layer_detail"]["layer_gate_gflops"]
    expected = layer_rate / result["matmul_gflops_autocast"]
    assert result["lstm_layer_flops_fraction_autocast"] == pytest.approx(expected, rel=0.01)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_device_cuda_without_cuda_is_a_one_line_error() -> None:
    proc = run_script("--device", "cuda", *TINY)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --device cuda: CUDA is not available")


def test_out_directory_and_missing_work_dir_are_refused_before_running(tmp_path: Path) -> None:
    for args in (["--out", str(tmp_path)], ["--work-dir", str(tmp_path / "missing")]):
        proc = run_script(*args, *TINY)
        assert proc.returncode == 2 and proc.stdout == "", proc.stderr[-2000:]
        assert proc.stderr.strip().splitlines()[-1].startswith("benchmark.py: error: --")
        assert "[bench" not in proc.stderr  # nothing was measured first


def load_script() -> Any:
    spec = importlib.util.spec_from_file_location("benchmark_script", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_bad_recipe_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        load_script().main(["--recipe", "pooling=avg", *TINY])
    assert exit_info.value.code == 2
    assert (
        capsys.readouterr().err.strip() == "error: --recipe: unknown pooling 'avg': use one of ('last', 'mean', 'max')"
    )


def test_recipe_values_take_the_defaults_types() -> None:
    recipe = bench.parse_recipe(["lr=3e-3", "batch_size=128", "bucket=false", "gradient_clip=1", "pooling=mean"])
    assert recipe["lr"] == 3e-3 and recipe["batch_size"] == 128 and recipe["bucket"] is False
    assert recipe["gradient_clip"] == 1.0 and recipe["pooling"] == "mean"
    assert bench.parse_recipe(["gradient_clip=null"])["gradient_clip"] is None
    for bad in (["nope=1"], ["lr"], ["batch_size=1.5"], ["bucket=maybe"], ["lr=none"]):
        with pytest.raises(SeqsentError, match="--recipe"):
            bench.parse_recipe(bad)
    with pytest.raises(SeqsentError, match="evals_per_epoch"):
        bench.check_recipe(bench.parse_recipe(["evals_per_epoch=0"]))


def test_gate_flops_count_input_and_recurrent_matmuls() -> None:
    # LSTM, batch 32, 200 steps, E = H = 128: 2*B*T*E*4H + 2*B*T*H*4H
    assert bench.gate_flops("lstm", 32, 200, 128, 128) == 2 * 2 * 32 * 200 * 128 * 512
    assert bench.gate_flops("rnn", 2, 3, 4, 5) == 2 * 2 * 3 * 4 * 5 + 2 * 2 * 3 * 5 * 5
    assert bench.gate_flops("gru", 1, 1, 1, 1) == 12


def test_synthetic_reviews_have_imdb_like_lengths() -> None:
    texts, labels = bench.imdb_like_reviews(1000, seed=0)
    words = [len(t.split()) for t in texts]
    assert 200 < sum(words) / len(words) < 270
    assert min(words) >= 10 and max(words) <= 2500
    assert sum(labels) == 500
    assert bench.imdb_like_reviews(5, seed=0) == bench.imdb_like_reviews(5, seed=0)


def test_matmul_and_memory_probes_report_positive_numbers() -> None:
    rates = bench.matmul_gflops(torch.device("cpu"), size=128, repeats=2, min_seconds=0.001)
    assert rates["torch_mm"] > 0 and all(v > 0 for v in rates.values())
    bf16 = bench.matmul_gflops(torch.device("cpu"), size=128, repeats=2, min_seconds=0.001, dtype=torch.bfloat16)
    assert set(bf16) == {"torch_mm"} and bf16["torch_mm"] > 0  # oneDNN's fp32 linear is not measured in bf16
    bench.reset_peak_rss()
    assert bench.peak_rss_mb() > 0


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Tiny models on one thread: spinning OpenMP threads on a busy CPU make them many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


SMALL = ["vocab_size=200", "max_len=32", "batch_size=16", "embed_dim=8", "hidden_size=8", "eval_batch_size=64"]


def test_time_to_accuracy_stops_at_the_first_evaluation_that_reaches_the_target(
    imdb_dir: Path, tmp_path: Path, one_thread: None
) -> None:
    recipe = bench.parse_recipe(SMALL)
    result = bench.time_to_accuracy(imdb_dir, recipe, 3, 0.0, torch.device("cpu"), tmp_path / "w")
    assert result["seconds"] > 0 and result["prep_seconds"] > 0
    assert len(result["history"]) == 1 and result["history"][0]["epoch"] == 0.5
    assert "reason" not in result


def test_time_to_accuracy_reports_null_and_the_best_accuracy_when_not_reached(
    imdb_dir: Path, tmp_path: Path, one_thread: None
) -> None:
    recipe = bench.parse_recipe([*SMALL, "evals_per_epoch=1"])
    result = bench.time_to_accuracy(imdb_dir, recipe, 2, 1.01, torch.device("cpu"), tmp_path / "w")
    assert result["seconds"] is None
    assert [h["epoch"] for h in result["history"]] == [1.0, 2.0]
    assert result["best_test_acc"] == max(h["test_acc"] for h in result["history"])
    assert "stayed below 1.01" in result["reason"]


def test_given_data_runs_the_time_to_accuracy_part(
    imdb_dir: Path, one_thread: None, capsys: pytest.CaptureFixture[str]
) -> None:
    sizes = ["--vocab-size", "200", "--max-len", "24", "--embed-dim", "8", "--hidden-size", "8"]
    args = ["--data", str(imdb_dir), "--quick", "--batches", "1,1", "--threads", "1", *sizes, "--max-epochs", "1"]
    assert load_script().main([*args, "--recipe", *SMALL, "evals_per_epoch=1"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["data"] == str(imdb_dir.resolve())
    assert result["time_to_86_2_recipe"]["hidden_size"] == 8
    detail = result["time_to_86_2_detail"]
    assert [h["epoch"] for h in detail["history"]] == [1.0] and detail["best_test_acc"] > 0
    assert (result["time_to_86_2"] is None) == ("reason" in detail)


def test_epoch_is_one_measured_pass_over_the_training_reviews(imdb_dir: Path, tmp_path: Path, one_thread: None) -> None:
    """`--epoch`: every training review once, in whole batches and a short last one; CPU: eager only."""
    _, dm = bench.time_prep(imdb_dir, tmp_path / "c", vocab_size=200, max_len=24, padding="pre", truncation="pre")
    sizes = {"vocab_size": 200, "max_len": 24, "embed_dim": 8, "hidden_size": 8}
    result = bench.benchmark_epoch("lstm", dm, 48, sizes, torch.device("cpu"), warmup=2)
    n = len(dm.train_set)  # 160 of the 200 reviews after the 20% validation split
    eager = result["eager"]
    assert set(result) == {"batch_size", "eager"} and result["batch_size"] == 48
    assert eager["reviews"] == n and eager["batches"] == -(-n // 48) == eager["eager_steps"]
    assert eager["epoch_seconds"] > 0 and eager["warmup_and_capture_seconds"] is None
    assert eager["reviews_per_s"] == pytest.approx(n / eager["epoch_seconds"])
    assert 0 < eager["mean_loss"] < 2


def test_graphed_step_needs_cuda() -> None:
    model = bench.seed_model("lstm", {"vocab_size": 50, "embed_dim": 4, "hidden_size": 4}, 0)
    batch = {"tokens": torch.ones(2, 3, dtype=torch.long), "lengths": torch.tensor([3, 3]), "labels": torch.ones(2)}
    with pytest.raises(SeqsentError, match="CUDA graphs need"):
        bench.GraphedTrainStep(model, model.configure_optimizers(), [batch])
