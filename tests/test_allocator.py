"""The entry points' malloc setting: it stops per-step page faults, changes no number, the documented
GLIBC_TUNABLES line does the same, and a malloc tunable of the user's own leaves glibc to it."""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys

import pytest

from seqsent import allocator

GLIBC = platform.libc_ver()[0] == "glibc"
pytestmark = pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
GLIBC_DEFAULTS = "glibc.malloc.check=0"  # a malloc tunable at its default: keep_freed_memory leaves glibc alone

# Seed-sized classifier training steps (batch 32, 200 steps, hidden 128) in a fresh process; prints
# the minor page faults per step (thousands with glibc's defaults: docs/speed.md).
STEPS = """
import json, resource, torch
from seqsent.allocator import keep_freed_memory
from seqsent.models import SequenceClassifier
pad = keep_freed_memory()
torch.manual_seed(0)
torch.set_num_threads(1)
model = SequenceClassifier(vocab_size=2000, embed_dim=128, encoder={"name": "lstm", "hidden_size": 128})
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


def run_steps(tunables: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    if tunables is not None:
        env["GLIBC_TUNABLES"] = tunables
    out = subprocess.run(
        [sys.executable, "-c", STEPS], capture_output=True, text=True, timeout=120, env=env, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def documented_tunables() -> str:
    """The GLIBC_TUNABLES value the module's docstring gives (its two lines joined)."""
    found = re.search(r"GLIBC_TUNABLES=(\S+:)\s+(\S+)", allocator.__doc__)
    assert found, allocator.__doc__
    return found.group(1) + found.group(2)


def test_the_pad_and_the_documented_tunables_stop_per_step_page_faults_and_change_no_number() -> None:
    default = run_steps(GLIBC_DEFAULTS)
    padded = run_steps(None)
    tuned = run_steps(documented_tunables())
    assert padded["pad"] == allocator.PAD_MB and default["pad"] == tuned["pad"] == 0  # the user's tunables win
    assert padded["weights"] == default["weights"] == tuned["weights"]  # same steps, bit for bit
    if default["faults_per_step"] < 1000:
        pytest.skip(f"glibc's defaults took only {default['faults_per_step']} page faults per step here")
    # with glibc's defaults each step maps its large buffers afresh; padded, it reuses them
    for run in (padded, tuned):
        assert run["faults_per_step"] < 0.25 * default["faults_per_step"], (run, default)


def test_a_malloc_tunable_of_the_users_own_leaves_glibc_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.arena_max=1")
    assert allocator.keep_freed_memory() == 0
