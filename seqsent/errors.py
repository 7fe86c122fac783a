"""One-line user errors: raise `SeqsentError`, entry points print it and exit non-zero."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

EXIT_USER_ERROR = 2
ERROR_FILE = "error.txt"  # a failed Hydra job's reason, in its run dir (seqsent.compare reads it)


class SeqsentError(Exception):
    """A problem with the user's input or environment, with the fix in the message."""


def user_message(err: BaseException) -> str | None:
    """The one-line message for errors caused by input, else None (a bug: keep the traceback).

    Hydra's `instantiate` wraps constructor errors; a `ValueError` raised while building a
    configured object is a bad config value.
    """
    if isinstance(err, (SeqsentError, FloatingPointError)):
        return str(err)
    from hydra.errors import InstantiationException

    if isinstance(err, InstantiationException) and isinstance(err.__cause__, (SeqsentError, ValueError)):
        return str(err.__cause__)
    return None


def report_job_errors(fn: F) -> F:
    """`report_errors` for Hydra task functions: also records `error.txt` and lets multiruns go on."""
    return report_errors(fn, hydra_job=True)


def report_errors(fn: F, hydra_job: bool = False) -> F:
    """Turn `SeqsentError` (and bad-value `ValueError`s) into `error: ...` and exit code 2.

    Set `HYDRA_FULL_ERROR=1` to see the traceback instead.

    With `hydra_job` (see `report_job_errors`) the reason also goes to `<run dir>/error.txt`, and in
    a multirun the error is re-raised instead of exiting, so Hydra marks this job failed and runs
    the others.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as err:
            message = user_message(err)
            multirun = hydra_job and _record_failure(message or f"{type(err).__name__}: {err}")
            if message is None or multirun or os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            print(f"error: {message}", file=sys.stderr, flush=True)
            sys.exit(EXIT_USER_ERROR)

    return wrapper  # type: ignore[return-value]


def clear_recorded_failure(run_dir: Path) -> None:
    """Remove an earlier refused attempt's `error.txt` from a run dir that now runs."""
    (run_dir / ERROR_FILE).unlink(missing_ok=True)


def _record_failure(message: str) -> bool:
    """Write `error.txt` into the Hydra run dir (if any); True when running a multirun."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        if not HydraConfig.initialized():
            return False
        hydra_cfg = HydraConfig.get()
        run_dir = Path(hydra_cfg.runtime.output_dir)
        if run_dir.is_dir() and not (run_dir / "metrics.json").exists():  # never touch a finished run
            (run_dir / ERROR_FILE).write_text(" ".join(message.split())[:2000] + "\n", encoding="utf-8")
        return hydra_cfg.mode == RunMode.MULTIRUN
    except Exception:  # never hide the original error
        return False
