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


def _num(value: float | None, digits: int = 4) -> str:
    return NA if value is None else f"{value:.{digits}f}"


def _mean_std(stat: Stat) -> str:
    if stat.mean is None:
        return NA
    return f"{stat.mean:.4f} ± {_num(stat.std)}"


def _ci(stat: Stat) -> str:
    if stat.ci_low is None or stat.ci_high is None:
        return NA
    return f"[{stat.ci_low:.4f}, {stat.ci_high:.4f}]"


def _params(params: tuple[int, int] | None) -> str:
    if params is None:
        return NA
    low, high = params
    return f"{low:,}" if low == high else f"{low:,}–{high:,}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A markdown table; `|` and newlines in cells are escaped."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def summary_table(summaries: list[ArchSummary]) -> str:
    """The per-architecture markdown table (also what `seqsent.compare` prints)."""
    header = [
        "architecture",
        "runs",
        "not completed",
        "test/acc mean ± std",
        "test/acc 95% CI",
        "val/acc_best mean ± std",
        "val/acc_best 95% CI",
        "train s (mean)",
        "params",
    ]
    rows = [
        [
            s.arch,
            str(s.completed),
            f"{s.failed} failed, {s.incomplete} incomplete" if s.failed or s.incomplete else "0",
            _mean_std(s.test_acc),
            _ci(s.test_acc),
            _mean_std(s.val_acc_best),
            _ci(s.val_acc_best),
            _num(s.train_seconds, 1),
            _params(s.params),
        ]
        for s in summaries
    ]
    return markdown_table(header, rows)


def status_text(run: Run) -> str:
    return run.status if run.status == COMPLETED or not run.reason else f"{run.status}: {run.reason}"


def runs_table(runs: list[Run]) -> str:
    """The per-run markdown table; failed and incomplete runs carry their reason."""
    header = ["run", "architecture", "seed", "test/acc", "val/acc_best", "train s", "status"]
    rows = [
        [
            f"`{r.name}`",
            r.arch,
            "" if r.seed is None else str(r.seed),
            _num(r.test_acc),
            _num(r.val_acc_best),
            _num(r.train_seconds, 1),
            status_text(r),
        ]
        for r in runs
    ]
    return markdown_table(header, rows)


def markdown_report(runs: list[Run], summaries: list[ArchSummary], root: Path | str) -> str:
    """The whole `comparison.md`: summary, notes, the per-run table and the figure."""
    done = sum(r.status == COMPLETED for r in runs)
    lines = [
        f"# Run comparison: `{root}`",
        "",
        f"{len(runs)} runs: {done} completed, {len(runs) - done} not completed. "
        f"Made with `python -m seqsent.compare {root}`.",
        "",
        "## By architecture",
        "",
        summary_table(summaries),
        "",
        "`runs`: completed runs, the statistics are over them. std: sample standard deviation; 95% CI: "
        "Student t with n-1 degrees of freedom, clipped to [0, 1]; both n/a with fewer than 2 runs.",
    ]
    varied = [s for s in summaries if s.differ_in]
    if varied:
        lines += ["", "Runs of one architecture differ in:"]
        lines += [f"- {s.arch}: {', '.join(s.differ_in)}" for s in varied]
    lines += ["", "## Runs", "", runs_table(runs), "", "![comparison](comparison.png)", ""]
    return "\n".join(lines)


SUMMARY_COLUMNS = ["architecture", "runs", "failed", "incomplete"]
STAT_FIELDS = ["n", "mean", "std", "ci95_low", "ci95_high"]
RUN_COLUMNS = [
    "run",
    "architecture",
    "seed",
    "status",
    "test_acc",
    "val_acc_best",
    "train_seconds",
    "epochs",
    "num_parameters",
    "reason",
    "path",
]


def _csv(header: list[str], rows: list[list[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([["" if v is None else v for v in row] for row in rows])
    return buffer.getvalue()


def summary_csv(summaries: list[ArchSummary]) -> str:
    """Per-architecture CSV; empty cells where a value is undefined (std and CI with one run)."""
    header = list(SUMMARY_COLUMNS)
    for metric in ("test_acc", "val_acc_best"):
        header += [f"{metric}_{f}" for f in STAT_FIELDS]
    header += ["train_seconds_mean", "num_parameters_min", "num_parameters_max", "differ_in"]
    rows = []
    for s in summaries:
        row: list[Any] = [s.arch, s.completed, s.failed, s.incomplete]
        for stat in (s.test_acc, s.val_acc_best):
            row += [stat.n, stat.mean, stat.std, stat.ci_low, stat.ci_high]
        low, high = s.params if s.params else (None, None)
        row += [s.train_seconds, low, high, " ".join(s.differ_in)]
        rows.append(row)
    return _csv(header, rows)


def runs_csv(runs: list[Run]) -> str:
    rows = [
        [
            r.name,
            r.arch,
            r.seed,
            r.status,
            r.test_acc,
            r.val_acc_best,
            r.train_seconds,
            r.metrics.get("epochs"),
            r.num_parameters,
            r.reason,
            str(r.path),
        ]
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
