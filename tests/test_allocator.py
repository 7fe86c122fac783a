"""The allocator setting: bad values fail clearly, 0 leaves glibc alone, the pad stops per-step page faults."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from seqsent.allocator import ENV, keep_freed_memory, pad_from_env
from seqsent.errors import SeqsentError

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

# Seed-sized classifier training steps (batch 32, 200 steps, hidden 128) in a fresh process; prints
# the minor page faults per step (~8,000 with glibc's defaults on the development machine).
STEPS = """
import json, resource, torch
from seqsent.allocator import keep_freed_memory
from seqsent.models import SequenceClassifier
pad = keep_freed_memory()
torch.manual_seed(0)
torch.set_num_threads(1)
model = SequenceClassifier(vocab_size=2000, embed_dim=128, hidden_size=128)
opt = model.configure_optimizers()
tokens, lengths, labels = torch.randint(1, 2000, (32, 200)), torch.full((32,), 200), torch.ones(32)
def step():
    loss = model.loss_fn(model(tokens, lengths), labels)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10
weights = [p.detach().double().sum().item() for p in model.parameters()]
print(json.dumps({"pad": pad, "faults_per_step": faults, "weights": weights}))
"""


def run_steps(pad_env: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", STEPS],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, ENV: pad_env, "OMP_NUM_THREADS": "1"},
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("value", ["lots", "-5", "1.5"])
def test_a_bad_pad_is_a_one_line_error_naming_the_variable(monkeypatch, value):
    monkeypatch.setenv(ENV, value)
    with pytest.raises(SeqsentError, match=f"{ENV}=.*use a whole number"):
        pad_from_env()


def test_pad_defaults_to_1024_and_reads_the_environment(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    assert pad_from_env() == 1024
    monkeypatch.setenv(ENV, "256")
    assert pad_from_env() == 256


def test_zero_changes_nothing():
    assert keep_freed_memory(0) == 0
    with pytest.raises(ValueError, match="pad_mb"):
        keep_freed_memory(-1)


@pytest.mark.skipif(not GLIBC, reason="glibc's mallopt only")
def test_the_pad_stops_training_steps_from_page_faulting_and_changes_no_number():
    padded = run_steps("1024")
    default = run_steps("0")
    assert padded["pad"] == 1024 and default["pad"] == 0
    assert padded["weights"] == default["weights"]  # same steps, bit for bit
    if default["faults_per_step"] < 1000:
        pytest.skip(f"glibc's defaults took only {default['faults_per_step']} page faults per step here")
    # with glibc's defaults each step maps its large buffers afresh (~8,000 faults on the development
    # machine); with the pad it reuses them (under 200 there; noisier on a loaded machine)
    assert padded["faults_per_step"] < 0.25 * default["faults_per_step"], (padded, default)


def test_train_rejects_a_bad_pad_before_doing_any_work(tmp_path):
    from helpers import run_module

    out = run_module(
        "seqsent.train", "data=synthetic", "trainer=cpu", f"hydra.run.dir={tmp_path / 'run'}", env={ENV: "big"}
    )
    assert out.returncode == 2, out.stderr[-2000:]
    assert f"{ENV}='big'" in out.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()
