"""`python -m seqsent.lr_find`: Lightning's learning-rate range test on the training config, its suggested
rate and plot in a directory of its own, which seqsent.compare never takes for a run."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import run_module
from test_cli import SMALL

SEARCH = ["lr_find.num_training=20", "lr_find.min_lr=1e-5", "lr_find.max_lr=0.5"]


def test_lr_find_writes_the_suggested_rate_and_its_plot(tmp_path: Path) -> None:
    out = tmp_path / "search"
    proc = run_module("seqsent.lr_find", *SMALL, *SEARCH, f"hydra.run.dir={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((out / "lr_find.json").read_text())
    assert 1e-5 <= result["suggested_lr"] <= 0.5 and result["configured_lr"] == 2e-3
    assert len(result["lrs"]) == len(result["losses"]) > 1 and result["lrs"] == sorted(result["lrs"])
    assert "lr_find.num_training=20" in result["overrides"]
    assert (out / "lr_find.png").read_bytes().startswith(b"\x89PNG")
    assert f"suggested model.lr={result['suggested_lr']:.3g}" in proc.stdout
    assert not (out / ".hydra").exists() and not list(out.glob(".lr_find_*"))  # no run record, no temporary
    again = run_module("seqsent.lr_find", *SMALL, *SEARCH, f"hydra.run.dir={out}")
    assert again.returncode == 2 and "already holds a run or learning-rate search (lr_find.json" in again.stderr


def test_an_empty_range_is_refused_in_one_line(tmp_path: Path) -> None:
    proc = run_module("seqsent.lr_find", *SMALL, "lr_find.min_lr=0.1", "lr_find.max_lr=0.01")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "lr_find.min_lr=0.1, max_lr=0.01: use 0 < min_lr < max_lr" in proc.stderr
