"""A one-line error for an override whose key the config does not have (`model.hiden_size=8`).

Hydra rejects such a key too, but with a multi-line message and exit code 1. The entry points call
`check_override_keys` first: it composes the config with the command's group choices (the first
option of a sweep such as `model=rnn,lstm`) and looks up every other `key=value` override in it
(dotted such as `model.hiden_size`, or top-level such as `sed`).
Keys added on purpose (`+key=...`), removals (`~key`), Hydra's own keys (`hydra.*`) and command
flags are left to Hydra. A config that cannot be composed here is left to Hydra as well.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from omegaconf import DictConfig, ListConfig

from seqsent.errors import SeqsentError
from seqsent.utils import check_group_choices, config_dir, register_resolvers


def _has_key(cfg: DictConfig, dotted: str) -> bool:
    """Whether `cfg` holds `dotted` (values not resolved; a list along the way counts as yes)."""
    node = cfg
    for part in dotted.split("."):
        if isinstance(node, ListConfig):
            return True
        # keys(), not `in`: a DictConfig holding "???" (a value still to give) says the key is absent
        if not isinstance(node, DictConfig) or part not in node.keys():  # noqa: SIM118
            return False
        node = node._get_node(part)
    return True


def _all_keys(cfg: DictConfig, prefix: str = "") -> list[str]:
    keys = []
    for key in cfg.keys():  # noqa: SIM118 (as in _has_key)
        name = f"{prefix}{key}"
        keys.append(name)
        node = cfg._get_node(key)
        if isinstance(node, DictConfig):
            keys.extend(_all_keys(node, f"{name}."))
    return keys


def _compose(config_name: str, choices: list[str]) -> DictConfig | None:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    register_resolvers()
    was_initialized = GlobalHydra.instance().is_initialized()
    try:
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
            return compose(config_name, overrides=choices)
    except Exception:  # anything odd about the command: Hydra reports it itself
        return None
    finally:
        if not was_initialized:
            GlobalHydra.instance().clear()


def check_override_keys(config_name: str, argv: list[str]) -> None:
    """Raise `SeqsentError` for the first `key=value` override (not a group choice) whose key
    `config_name` lacks."""
    conf = Path(config_dir())
    choices, dotted = [], []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep or arg.startswith(("-", "+", "~")) or "@" in key or key.startswith("hydra"):
            continue
        if "." not in key and "/" not in key and (conf / key).is_dir():
            choices.append(f"{key}={value.split(',')[0]}")
        else:  # `model.hiden_size`, or a top-level key such as `sed`
            dotted.append(key)
    if not dotted:
        return
    cfg = _compose(config_name, choices)
    if cfg is None:
        return
    known = _all_keys(cfg)
    for key in dotted:
        if _has_key(cfg, key):
            continue
        close = difflib.get_close_matches(key, known, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise SeqsentError(f"{key} is not a setting of this config: {hint}(to add a new key, write +{key}=...)")


def check_overrides(config_name: str, argv: list[str]) -> None:
    """The command line's checks before Hydra runs: group choices that exist (`check_group_choices`),
    then keys that exist (`check_override_keys`)."""
    check_group_choices(argv)
    check_override_keys(config_name, argv)
