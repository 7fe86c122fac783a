"""Compare the runs of a sweep (or of any directory of runs) by architecture.

    python -m seqsent.compare multirun/2026-11-24/09-58-32_6cc4d1    # a sweep of seqsent.train -m
    python -m seqsent.compare outputs out=reports/all                # every run below outputs/

Finds every run dir below SWEEP_DIR (a dir holding `.hydra/config.yaml`), groups the runs by
architecture (`model.cell`, `bi-` when bidirectional) and by the overrides that vary between runs of
one architecture except the seed (`lstm model.lr=0.01`), and writes into SWEEP_DIR (or `out=DIR`):
`comparison.md` (tables), `comparison.csv` (per architecture: completed runs, mean ± std and Student-t
95% CI, clipped to [0, 1], of test/acc and val/acc_best, mean train seconds, parameters),
`comparison_runs.csv` (per run, failed and incomplete ones with their reason) and `comparison.png`
(val/acc per epoch, test/acc per architecture). Prints the summary table. In Python:
`runs = load_runs(path); summarize(runs)`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from seqsent.analysis.plots import comparison_figure, save_figure
from seqsent.analysis.report import status_text, summary_table, write_report
from seqsent.analysis.runs import COMPLETED, Run, load_runs
from seqsent.analysis.stats import ArchSummary, summarize
from seqsent.errors import SeqsentError, report_errors

__all__ = ["compare", "comparison_figure", "load_runs", "main", "run", "summarize"]

OPTIONS = {"out"}
USAGE = "usage: python -m seqsent.compare SWEEP_DIR [out=DIR]"


def parse_args(argv: list[str]) -> tuple[Path, Path | None]:
    """One directory (its name may contain `=`, as sweep job dirs do) and an optional `out=DIR`."""
    paths: list[str] = []
    out: Path | None = None
    for arg in argv:
        key, sep, value = arg.partition("=")
        if sep and key.lstrip("+") in OPTIONS:
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
    fig = comparison_figure(runs)
    files.append(save_figure(fig, out_dir / "comparison.png"))
    return runs, summaries, files


def console_report(runs: list[Run], summaries: list[ArchSummary], files: list[Path]) -> str:
    """What the command prints: the summary table, the runs that did not complete, the files."""
    done = sum(r.status == COMPLETED for r in runs)
    lines = [f"{len(runs)} runs: {done} completed, {len(runs) - done} not completed", "", summary_table(summaries)]
    missing = [r for r in runs if r.status != COMPLETED]
    if missing:
        lines += ["", "not completed:"]
        lines += [f"  {r.name}: {status_text(r)}" for r in missing]
    lines += ["", "wrote: " + ", ".join(str(f) for f in files)]
    return "\n".join(lines)


@report_errors
def run(argv: list[str]) -> list[ArchSummary]:
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return []
    path, out = parse_args(argv)
    runs, summaries, files = compare(path, out)
    print(console_report(runs, summaries, files), flush=True)
    return summaries


def main() -> None:
    run(sys.argv[1:])


if __name__ == "__main__":
    main()
