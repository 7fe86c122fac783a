"""One-line user errors: raise `SeqsentError`, entry points print it and exit non-zero."""

from __future__ import annotations

import functools
import inspect
import numbers
import os
import sys
import traceback
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

EXIT_USER_ERROR = 2
ERROR_FILE = "error.txt"  # a failed Hydra job's reason, in its run dir (seqsent.compare reads it)


class SeqsentError(Exception):
    """A problem with the user's input or environment, with the fix in the message."""


class SettingError(SeqsentError, ValueError):
    """A setting with a value seqsent's own checks refuse (still a `ValueError` for library callers)."""


TYPE_NAMES = {bool: "true or false", int: "a whole number", float: "a number", str: "a string", type(None): "null"}


def check_types(fn: Callable[..., Any], values: Mapping[str, Any], prefix: str = "") -> None:
    """Raise `SettingError` for the first of `values` that does not fit the plain type hint (bool, int,
    float, str, None or a union of them) of `fn`'s parameter of that name; `prefix` is the config section."""
    hints = typing.get_type_hints(fn)
    for name, value in values.items():
        hint = hints.get(name)
        allowed = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
        if not all(t in TYPE_NAMES for t in allowed) or any(_fits(value, t) for t in allowed):
            continue
        default = inspect.signature(fn).parameters[name].default
        shown = str(default).lower() if isinstance(default, bool) else default
        example = f", e.g. {prefix}{name}={shown}" if default not in (inspect.Parameter.empty, None) else ""
        use = " or ".join(TYPE_NAMES[t] for t in allowed if not (t is int and float in allowed))
        raise SettingError(f"{prefix}{name}={value!r}: use {use}{example}")


def _fits(value: Any, hint: type) -> bool:
    if hint in (int, float) and isinstance(value, bool):
        return False
    return isinstance(value, {int: numbers.Integral, float: numbers.Real}.get(hint, hint))  # numpy numbers too


def report_errors(fn: F, hydra_job: bool = False) -> F:
    """Turn `SeqsentError` (also one raised in a constructor Hydra called) into `error: ...` and exit
    code 2 (`HYDRA_FULL_ERROR=1` shows its traceback); any other error keeps its traceback (exit code 1).
    With `hydra_job` the reason also goes to `<run dir>/error.txt`, and in a multirun the error is
    re-raised, so Hydra marks this job failed and runs the others."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as err:
            user = _seqsent_error(err)
            multirun = hydra_job and _record_failure(str(user) if user else f"{type(err).__name__}: {err}")
            if multirun or os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            if user is not None:
                print(f"error: {user}", file=sys.stderr, flush=True)
                sys.exit(EXIT_USER_ERROR)
            if _raised_in_constructor(err):
                traceback.print_exception(err)
                sys.exit(1)
            raise

    return wrapper  # type: ignore[return-value]


# for Hydra task functions: also records `error.txt` and lets multiruns go on
report_job_errors = functools.partial(report_errors, hydra_job=True)


def _seqsent_error(err: BaseException) -> SeqsentError | None:
    """`err`, or the error Hydra's `instantiate` wrapped, when it is a `SeqsentError`."""
    from hydra.errors import InstantiationException

    while isinstance(err, InstantiationException):
        err = err.__cause__  # type: ignore[assignment]
    return err if isinstance(err, SeqsentError) else None


def _raised_in_constructor(err: BaseException) -> bool:
    """Whether `err` is Hydra's wrapper of an error raised inside the code it called, not by the
    call itself (an unknown argument such as `+model.hiden_size=8`: Hydra's message says it)."""
    from hydra.errors import InstantiationException

    tb = err.__cause__.__traceback__ if isinstance(err, InstantiationException) and err.__cause__ else None
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and not tb.tb_frame.f_globals.get("__name__", "").startswith("hydra.")


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


def run_or_help(doc: str | None, run: Callable[[list[str]], object], argv: list[str]) -> None:
    """A `key=value` entry point's command line: `-h`/`--help` prints its usage (`doc`), else `run(argv)`."""
    if any(a in ("-h", "--help") for a in argv):
        print(doc)
        return
    run(argv)


def prediction_options(texts: list[str], args: Mapping[str, list[str]]) -> tuple[int, int]:
    """The checked `batch_size=` and `max_chars=` of a predictor's command line (the last given, defaults 256
    and 100,000); a blank text among `texts` is a one-line error."""
    if any(not t.strip() for t in texts):
        raise SeqsentError("text= is empty: give a review to classify")
    try:
        batch_size = int(args.get("batch_size", ["256"])[-1])
        max_chars = int(args.get("max_chars", ["100000"])[-1])
    except ValueError:
        raise SeqsentError("batch_size= and max_chars= take whole numbers") from None
    if batch_size < 1 or max_chars < 1:
        raise SeqsentError("batch_size= and max_chars= must be >= 1")
    return batch_size, max_chars
