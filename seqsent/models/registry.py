"""The encoder registry: encoders chosen by name (or by import path) and built from plain settings.

An encoder is an `nn.Module` built as `factory(input_size=<embedding size>, **settings)` with an int
attribute `output_size`, whose `forward(x (B, T, input_size) left-aligned, lengths (B,))` returns
(B, output_size); the padding after each row's `lengths[b]` steps must never change its output.
Register your own with `@register_encoder("name")`, or name its class by `_target_` (docs/models.md).
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from torch import nn

from seqsent.errors import SettingError, check_types
from seqsent.models.awd_lstm import AWDLSTM
from seqsent.models.cnn import CNNEncoder
from seqsent.models.encoders import CELLS, RecurrentEncoder
from seqsent.models.nbow import NBOWEncoder
from seqsent.models.transformer import TransformerEncoder

PREFIX = "model.encoder."
ENCODERS: dict[str, Callable[..., nn.Module]] = {
    **{cell: functools.partial(RecurrentEncoder, cell=cell) for cell in CELLS},
    "cnn": CNNEncoder,
    "transformer": TransformerEncoder,
    "nbow": NBOWEncoder,
    "awd_lstm": AWDLSTM,
}

F = TypeVar("F", bound=Callable[..., nn.Module])


def register_encoder(name: str) -> Callable[[F], F]:
    """Class (or factory) decorator: make it `model.encoder.name=<name>`."""

    def register(factory: F) -> F:
        ENCODERS[name] = factory
        return factory

    return register


def build_encoder(spec: Mapping[str, Any], input_size: int) -> nn.Module:
    """Build the encoder `spec` describes for inputs of `input_size`.

    `spec` is a plain mapping: `{"name": <registered name>, **settings}` or `{"_target_": "pkg.mod.Class",
    **settings}` (then an optional `name` is only a label). A problem with it raises `SettingError`
    naming the `model.encoder.<key>` and the fix."""
    settings = dict(spec)
    target, name = settings.pop("_target_", None), settings.pop("name", None)
    factory, label = (_imported(target), repr(target)) if target else (_registered(name), name)
    fn, fixed = _constructor(factory)
    _check_keys(fn, fixed, settings, label)
    check_types(fn, settings, PREFIX)
    encoder = factory(input_size=input_size, **settings)
    if not isinstance(getattr(encoder, "output_size", None), int):
        raise SettingError(
            f"model.encoder: the {label} encoder ({type(encoder).__name__}) has no int output_size: "
            "set self.output_size in its __init__"
        )
    return encoder


def _registered(name: Any) -> Callable[..., nn.Module]:
    if name is None:
        raise SettingError(f"{PREFIX}name is missing: use one of {sorted(ENCODERS)}, or _target_=<module.Class>")
    if name not in ENCODERS:
        raise SettingError(
            f"{PREFIX}name={name!r}: unknown encoder: use one of {sorted(ENCODERS)}, or _target_=<module.Class>"
        )
    return ENCODERS[name]


def _imported(target: Any) -> Callable[..., nn.Module]:
    """The object `target` ("pkg.mod.Class") names."""
    module_name, _, attr = str(target).rpartition(".")
    try:
        factory = getattr(importlib.import_module(module_name), attr) if module_name else None
    except (ImportError, AttributeError) as err:
        raise SettingError(
            f"{PREFIX}_target_={target!r}: cannot import it ({type(err).__name__}: {err}): give module.Class "
            "importable from the working directory or PYTHONPATH"
        ) from err
    if not callable(factory):
        raise SettingError(f"{PREFIX}_target_={target!r}: give module.Class, a class importable from there")
    return factory


def _constructor(factory: Callable[..., Any]) -> tuple[Callable[..., Any], set[str]]:
    """The function whose parameters are `factory`'s settings (a class's `__init__`), and the names
    a `functools.partial` already fixes."""
    if isinstance(factory, functools.partial):
        fn, fixed = _constructor(factory.func)
        return fn, fixed | set(factory.keywords)
    return (factory.__init__ if inspect.isclass(factory) else factory), set()


def _check_keys(fn: Callable[..., Any], fixed: set[str], settings: Mapping[str, Any], label: str) -> None:
    """Refuse settings `fn` does not take, and input_size (the model sets it)."""
    params = inspect.signature(fn).parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    if "input_size" not in params and not takes_any:
        raise SettingError(f"model.encoder: the {label} encoder takes no input_size (the embedding size): add it")
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    valid = sorted(n for n, p in params.items() if p.kind in named and n not in fixed | {"self", "input_size"})
    for key in settings:
        if key == "input_size":
            raise SettingError(f"{PREFIX}input_size: the model sets it from the embedding size: remove it")
        if key not in valid and not takes_any:
            raise SettingError(f"{PREFIX}{key}: not a setting of the {label} encoder: use one of {valid}")
