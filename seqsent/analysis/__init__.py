"""Analysis of finished runs: discovery and loading, statistics, reports and plots (see `seqsent.compare`)."""

from seqsent.analysis.plots import comparison_figure, save_figure
from seqsent.analysis.report import markdown_report, summary_table, write_report
from seqsent.analysis.runs import Run, find_run_dirs, load_run, load_runs, newest_sweep
from seqsent.analysis.stats import ArchSummary, Stat, describe, summarize, t_critical

__all__ = [
    "ArchSummary",
    "Run",
    "Stat",
    "comparison_figure",
    "describe",
    "find_run_dirs",
    "load_run",
    "load_runs",
    "markdown_report",
    "newest_sweep",
    "summarize",
    "save_figure",
    "summary_table",
    "t_critical",
    "write_report",
]
