"""One-line user errors: raise `SeqsentError`, entry points print it and exit non-zero."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

EXIT_USER_ERROR = 2


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


def report_errors(fn: F) -> F:
    """Turn `SeqsentError` (and bad-value `ValueError`s) into `error: ...` and exit code 2.

    Set `HYDRA_FULL_ERROR=1` to see the traceback instead.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as err:
            message = user_message(err)
            if message is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            print(f"error: {message}", file=sys.stderr, flush=True)
            sys.exit(EXIT_USER_ERROR)

    return wrapper  # type: ignore[return-value]
