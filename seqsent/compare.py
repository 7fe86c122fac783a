"""Compare the runs of a sweep (or of any directory of runs) by architecture.

    python -m seqsent.compare multirun/2026-11-24/09-58-32_6cc4d1    # a sweep of seqsent.train -m
    python -m seqsent.compare outputs out=reports/all                # every run below outputs/

Groups the runs below SWEEP_DIR by architecture and by the overrides that vary between its runs
(except the seed), prints the summary table and writes `comparison.md`, `comparison.csv`,
`comparison_runs.csv` and `comparison.png` into SWEEP_DIR (or out=DIR): docs/sweeps.md.
In Python: `runs = load_runs(path); summarize(runs)`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from seqsent.analysis.plots import comparison_figure, save_figure
from seqsent.analysis.report import counts, status_text, summary_table, write_report
from seqsent.analysis.runs import Run, load_runs
from seqsent.analysis.stats import ArchSummary, summarize
from seqsent.errors import SeqsentError, report_errors

__all__ = ["compare", "comparison_figure", "load_runs", "main", "run", "summarize"]

USAGE = "usage: python -m seqsent.compare SWEEP_DIR [out=DIR]"


def parse_args(argv: list[str]) -> tuple[Path, Path | None]:
    """One directory (its name may contain `=`, as sweep job dirs do) and an optional `out=DIR`."""
    paths: list[str] = []
    out: Path | None = None
    for arg in argv:
        key, sep, value = arg.partition("=")
        if sep and key.lstrip("+") == "out":
            if not value:
                raise SeqsentError(f"out= needs a directory: {USAGE}")
            out = Path(value).expanduser()
        elif sep and "/" not in key and not Path(arg).exists():
            raise SeqsentError(f"unknown argument {arg[:60]!r}: {USAGE}")
        else:
            paths.append(arg)
    if len(paths) != 1:
        raise SeqsentError(f"give exactly one sweep directory (got {len(paths)}): {USAGE}")
    return Path(paths[0]).expanduser(), out


def compare(path: str | Path, out: str | Path | None = None) -> tuple[list[Run], list[ArchSummary], list[Path]]:
    """Load the runs below `path`, summarize them and write the report files into `out` (default `path`)."""
    runs = load_runs(path)
    summaries = summarize(runs)
    out_dir = Path(out if out is not None else path).expanduser()
    if out_dir.exists() and not out_dir.is_dir():
        raise SeqsentError(f"out={out_dir} is a file: pass a directory for the report")
    files = write_report(runs, summaries, out_dir, path)
    return runs, summaries, [*files, save_figure(comparison_figure(runs), out_dir / "comparison.png")]


@report_errors
def run(argv: list[str]) -> list[ArchSummary]:
    """The command: prints the summary table, the runs that did not complete and the files written."""
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return []
    runs, summaries, files = compare(*parse_args(argv))
    lines = [counts(runs), "", summary_table(summaries)]
    missing = [f"  {r.name}: {status_text(r)}" for r in runs if not r.completed]
    lines += ["", "not completed:", *missing] if missing else []
    print("\n".join([*lines, "", "wrote: " + ", ".join(str(f) for f in files)]), flush=True)
    return summaries


def main() -> None:
    run(sys.argv[1:])


if __name__ == "__main__":
    main()
