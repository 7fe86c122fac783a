"""Text outputs of a comparison: markdown tables and CSV files."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from seqsent.analysis.runs import COMPLETED, Run
from seqsent.analysis.stats import ArchSummary, Stat
from seqsent.utils import atomic_write_text

NA = "n/a"
STAT_FIELDS = ["n", "mean", "std", "ci95_low", "ci95_high"]
METRICS = ("test/acc", "test/f1", "val/acc_best")  # each with its statistics per architecture
RUN_COLUMNS = ["run", "architecture", "seed", "status", "test_acc", "test_f1", "val_acc_best", "train_seconds"]
RUN_COLUMNS += ["epochs", "num_parameters", "reason", "path"]


def _num(value: float | None, digits: int = 4) -> str:
    return NA if value is None else f"{value:.{digits}f}"


def _stat_cells(stat: Stat) -> list[str]:
    """`mean ± std` and `[low, high]`."""
    if stat.mean is None:
        return [NA, NA]
    ci = NA if stat.ci_low is None else f"[{stat.ci_low:.4f}, {stat.ci_high:.4f}]"
    return [f"{stat.mean:.4f} ± {_num(stat.std)}", ci]


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A markdown table; `|` and newlines in cells are escaped."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def summary_table(summaries: list[ArchSummary]) -> str:
    """The per-architecture markdown table (also what `seqsent.compare` prints)."""
    header = ["architecture", "runs", "not completed"]
    header += [f"{m} {what}" for m in METRICS for what in ("mean ± std", "95% CI")]
    rows = []
    for s in summaries:
        low, high = s.params or (0, 0)
        params = NA if s.params is None else f"{low:,}" if low == high else f"{low:,}–{high:,}"
        missing = f"{s.failed} failed, {s.incomplete} incomplete" if s.failed or s.incomplete else "0"
        cells = [cell for stat in _stats(s) for cell in _stat_cells(stat)] + [_num(s.train_seconds, 1), params]
        rows.append([s.arch, str(s.completed), missing, *cells])
    return markdown_table([*header, "train s (mean)", "params"], rows)


def _stats(summary: ArchSummary) -> tuple[Stat, ...]:
    """The summary's statistics in `METRICS` order."""
    return summary.test_acc, summary.test_f1, summary.val_acc_best


def status_text(run: Run) -> str:
    return run.status if run.status == COMPLETED or not run.reason else f"{run.status}: {run.reason}"


def runs_table(runs: list[Run]) -> str:
    """The per-run markdown table; failed and incomplete runs carry their reason."""
    header = ["run", "architecture", "seed", *METRICS, "train s", "status"]
    rows = [
        [f"`{r.name}`", r.arch, "" if r.seed is None else str(r.seed), _num(r.test_acc), _num(r.test_f1)]
        + [_num(r.val_acc_best), _num(r.train_seconds, 1), status_text(r)]
        for r in runs
    ]
    return markdown_table(header, rows)


def counts(runs: list[Run]) -> str:
    done = sum(r.status == COMPLETED for r in runs)
    return f"{len(runs)} runs: {done} completed, {len(runs) - done} not completed"


def markdown_report(runs: list[Run], summaries: list[ArchSummary], root: Path | str) -> str:
    """The whole `comparison.md`: summary, notes, the per-run table and the figure."""
    lines = [f"# Run comparison: `{root}`", "", f"{counts(runs)}. Made with `python -m seqsent.compare {root}`."]
    lines += ["", "## By architecture", "", summary_table(summaries), ""]
    lines.append(
        "`runs`: completed runs, the statistics are over them. std: sample standard deviation; 95% CI: "
        "Student t with n-1 degrees of freedom, clipped to [0, 1]; both n/a with fewer than 2 runs."
    )
    varied = [s for s in summaries if s.differ_in]
    if varied:
        lines += ["", "Runs of one architecture differ in:", *(f"- {s.arch}: {', '.join(s.differ_in)}" for s in varied)]
    lines += ["", "## Runs", "", runs_table(runs), "", "![comparison](comparison.png)", ""]
    return "\n".join(lines)


def _csv(header: list[str], rows: list[list[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([["" if v is None else v for v in row] for row in rows])
    return buffer.getvalue()


def summary_csv(summaries: list[ArchSummary]) -> str:
    """Per-architecture CSV; empty cells where a value is undefined (std and CI with one run)."""
    header = ["architecture", "runs", "failed", "incomplete"]
    header += [f"{metric.replace('/', '_')}_{f}" for metric in METRICS for f in STAT_FIELDS]
    header += ["train_seconds_mean", "num_parameters_min", "num_parameters_max", "differ_in"]
    rows = []
    for s in summaries:
        row: list[Any] = [s.arch, s.completed, s.failed, s.incomplete]
        for stat in _stats(s):
            row += [stat.n, stat.mean, stat.std, stat.ci_low, stat.ci_high]
        rows.append([*row, s.train_seconds, *(s.params or (None, None)), " ".join(s.differ_in)])
    return _csv(header, rows)


def runs_csv(runs: list[Run]) -> str:
    """Per-run CSV, failed and incomplete runs with their reason."""
    rows = [
        [r.name, r.arch, r.seed, r.status, r.test_acc, r.test_f1, r.val_acc_best, r.train_seconds]
        + [r.metrics.get("epochs"), r.num_parameters, r.reason, str(r.path)]
        for r in runs
    ]
    return _csv(RUN_COLUMNS, rows)


def write_report(runs: list[Run], summaries: list[ArchSummary], out: Path, root: Path | str) -> list[Path]:
    """Write `comparison.md`, `comparison.csv` (per architecture) and `comparison_runs.csv` into `out`."""
    files = {
        out / "comparison.md": markdown_report(runs, summaries, root),
        out / "comparison.csv": summary_csv(summaries),
        out / "comparison_runs.csv": runs_csv(runs),
    }
    for path, text in files.items():
        atomic_write_text(path, text)
    return list(files)
