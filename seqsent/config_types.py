"""One-line errors for config values of the wrong type, before Hydra builds anything.

`model.lr=abc` or `data.batch_size=1.5` would otherwise fail deep inside a constructor or the
Trainer, as a multi-line Hydra error or a traceback. The `model`, `data` and `trainer` groups are
checked against the type hints of the classes their `_target_` names (`SequenceClassifier`,
`IMDBDataModule`, `lightning.Trainer`, ...), and `seed` must be a whole number. Only plain types are
checked (bool, int, float, str, None and unions of them); values of other annotated types pass
through to the class's own checks.
"""

from __future__ import annotations

import inspect
import types
import typing
from typing import Any

from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from seqsent.errors import SeqsentError

GROUPS = ("model", "data", "trainer")
NAMES = {bool: "true or false", int: "a whole number", float: "a number", str: "a string", type(None): "null"}


def _accepts(hint: Any, value: Any) -> bool | None:
    """Whether `value` fits `hint`; None when the hint is not a plain type (not checked)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        verdicts = [_accepts(arg, value) for arg in typing.get_args(hint)]
        return None if None in verdicts else any(verdicts)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    return None


def _describe(hint: Any) -> str:
    args = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    names = [NAMES[a] for a in args if a in NAMES]
    if int in args and float in args:
        names.remove(NAMES[int])
    return " or ".join(names)


def check_group_types(group: str, node: DictConfig | None) -> None:
    """Raise `SeqsentError` for the first value in `node` whose type its class's `__init__` rules out."""
    if node is None or "_target_" not in node:
        return
    hints: dict[str, Any] = {}
    defaults: dict[str, inspect.Parameter] = {}
    try:  # the class's own arguments first, then those it passes on to its bases (**kwargs)
        for cls in get_class(node._target_).__mro__:
            if "__init__" in vars(cls) and cls is not object:
                hints = {**typing.get_type_hints(cls.__init__), **hints}
                defaults = {**inspect.signature(cls.__init__).parameters, **defaults}
    except Exception:  # a target that cannot be inspected is left to Hydra
        return
    values = OmegaConf.to_container(node, resolve=True)
    for key, value in values.items():
        if key.startswith("_") or key not in hints or _accepts(hints[key], value) is not False:
            continue
        default = defaults[key].default if key in defaults else inspect.Parameter.empty
        shown = str(default).lower() if isinstance(default, bool) else default
        example = f", e.g. {group}.{key}={shown}" if default not in (inspect.Parameter.empty, None) else ""
        raise SeqsentError(f"{group}.{key}={value!r}: use {_describe(hints[key])}{example}")


def check_config_types(cfg: DictConfig) -> None:
    """Type checks of `seed` and the `model`, `data` and `trainer` groups (see the module docstring)."""
    seed = cfg.get("seed")
    if seed is not None and _accepts(int, seed) is False:
        raise SeqsentError(f"seed={seed!r}: use a whole number, e.g. seed=42")
    for group in GROUPS:
        check_group_types(group, cfg.get(group))
