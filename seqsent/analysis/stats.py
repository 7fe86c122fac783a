"""Per-architecture statistics: mean, sample std and a Student-t 95% confidence interval."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from seqsent.analysis.runs import COMPLETED, FAILED, INCOMPLETE, Run, arch_sort_key
from seqsent.utils import flatten

# Two-sided 95% critical values of Student's t (0.975 quantiles) for 1..30 degrees of freedom.
T95_TABLE = (
    12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
    2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
    2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423,
)  # fmt: skip
UNIT = (0.0, 1.0)  # the range of accuracy, F1 and AUROC


def t_critical(df: int) -> float:
    """Two-sided 95% critical value of Student's t, t_{0.975, df}: the table, above 30 df the
    Cornish-Fisher expansion (within 1e-4)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if df <= len(T95_TABLE):
        return T95_TABLE[df - 1]
    z = statistics.NormalDist().inv_cdf(0.975)
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


@dataclass
class Stat:
    """n values: mean, sample std (n-1) and 95% CI; None where undefined (std and CI need n >= 2)."""

    n: int
    mean: float | None = None
    std: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None


def describe(values: list[float], bounds: tuple[float, float] = (-math.inf, math.inf)) -> Stat:
    """Mean ± sample std and the Student-t 95% confidence interval of the mean, clipped to `bounds`
    (a metric's possible range, e.g. (0, 1) for accuracy: few runs make wide intervals)."""
    n = len(values)
    if n == 0:
        return Stat(0)
    mean = statistics.fmean(values)
    if n == 1:
        return Stat(1, mean)
    std = statistics.stdev(values)
    half = t_critical(n - 1) * std / math.sqrt(n)
    return Stat(n, mean, std, max(mean - half, bounds[0]), min(mean + half, bounds[1]))


@dataclass
class ArchSummary:
    """One architecture's runs: counts by status and statistics over the completed ones."""

    arch: str
    completed: int
    failed: int
    incomplete: int
    test_acc: Stat
    test_f1: Stat  # binary F1, or macro F1 over the classes
    val_acc_best: Stat
    train_seconds: float | None  # mean over completed runs
    params: tuple[int, int] | None  # (min, max) parameter count
    differ_in: list[str] = field(default_factory=list)  # config keys whose values differ between the runs


def summarize(runs: list[Run]) -> list[ArchSummary]:
    """One `ArchSummary` per architecture (in `arch_sort_key` order), failed/incomplete runs counted."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(run.arch, []).append(run)
    summaries = []
    for arch in sorted(groups, key=arch_sort_key):
        group = groups[arch]
        done = [r for r in group if r.status == COMPLETED]
        seconds = [r.train_seconds for r in done if r.train_seconds is not None]
        params = [r.num_parameters for r in done if r.num_parameters is not None]
        summaries.append(
            ArchSummary(
                arch=arch,
                completed=len(done),
                failed=sum(r.status == FAILED for r in group),
                incomplete=sum(r.status == INCOMPLETE for r in group),
                test_acc=describe([r.test_acc for r in done if r.test_acc is not None], UNIT),
                test_f1=describe([r.test_f1 for r in done if r.test_f1 is not None], UNIT),
                val_acc_best=describe([r.val_acc_best for r in done if r.val_acc_best is not None], UNIT),
                train_seconds=statistics.fmean(seconds) if seconds else None,
                params=(min(params), max(params)) if params else None,
                differ_in=differing_keys([r.config for r in group]),
            )
        )
    return summaries


def differing_keys(configs: list[dict[str, Any]]) -> list[str]:
    """Dotted config keys whose values are not the same in all `configs`."""
    flat = [flatten(c) for c in configs if c]
    keys = sorted(set().union(*flat)) if len(flat) > 1 else []
    return [k.replace("/", ".") for k in keys if len({f.get(k) for f in flat}) > 1]
