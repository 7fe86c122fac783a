"""A one-line error for an override whose key the config does not have (`model.hiden_size=8`).

Hydra rejects such a key too, but with a multi-line message and exit code 1. The entry points call
`check_override_keys` first: it composes the config with the command's group choices (the first
option of a sweep such as `model=rnn,lstm`) and looks up every other `key=value` override in it
(dotted such as `model.hiden_size`, or top-level such as `sed`).
Keys added on purpose (`+model.key=...`) are looked up in the signature of the class their
section builds (`_target_`): a name it does not take, or a key the config already has, fails in
one line too. Hydra's own keys (`hydra.run.dir`) are looked up in Hydra's config. A word that is
not an override at all (`python -m seqsent.eval run/last.ckpt`) fails in one line. Removals
(`~key`), added keys outside a built section and command flags are left to Hydra, as is a config
that cannot be composed here.
"""

from __future__ import annotations

import difflib
import inspect
from pathlib import Path

from omegaconf import DictConfig, ListConfig, Node, OmegaConf

from seqsent.errors import SeqsentError
from seqsent.utils import check_group_choices, config_dir, is_config_group, register_resolvers


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
    """The config with the command's group choices, Hydra's own config included (`hydra.*`)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    register_resolvers()
    was_initialized = GlobalHydra.instance().is_initialized()
    try:
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
            return compose(config_name, overrides=choices, return_hydra_config=True)
    except Exception:  # anything odd about the command: Hydra reports it itself
        return None
    finally:
        if not was_initialized:
            GlobalHydra.instance().clear()


def _suggest(key: str, known: list[str]) -> str:
    """`did you mean ...? ` for the closest known key: a sibling with a similar name, or, where the
    parent itself is unknown, a similar full key; empty when nothing is close."""
    parent, _, name = key.rpartition(".")
    siblings = {k.rpartition(".")[2]: k for k in known if k.rpartition(".")[0] == parent}
    if siblings:
        close = difflib.get_close_matches(name, list(siblings), n=1)
        close = [siblings[c] for c in close]
    else:
        close = difflib.get_close_matches(key, known, n=1)
    return f"did you mean {close[0]}? " if close and close[0] != key else ""


# Hydra's own keys of a node it instantiates, not arguments of the class
_INSTANTIATE_KEYS = frozenset({"_target_", "_recursive_", "_convert_", "_partial_", "_args_"})


def _check_added_key(cfg: DictConfig, key: str, value: str, retargeted: set[str]) -> None:
    """`+key=value`: refuse what Hydra would refuse (a key holding a value, unless a dict or list is
    merged into it), and a name the class its section builds does not take (unless the command
    sets that section's `_target_` too)."""
    if _has_key(cfg, key) and not value.lstrip().startswith(("{", "[")):
        node = _node(cfg, key)  # None or "???" in the config: Hydra lets + set it
        if isinstance(node, Node) and not (node._is_none() or node._is_missing()):
            raise SeqsentError(f"+{key}: the config already has {key}: write {key}=... without the +")
    parent, _, name = key.rpartition(".")
    if not parent or name in _INSTANTIATE_KEYS or parent in retargeted or not _has_key(cfg, parent):
        return
    node = _node(cfg, parent)
    target = node.get("_target_") if isinstance(node, DictConfig) else None
    if not isinstance(target, str):
        return
    try:
        from hydra.utils import get_object

        params = inspect.signature(get_object(target)).parameters
    except Exception:  # an odd target: Hydra reports it itself
        return
    if name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    names = [p for p in params if p != "self"]
    takes = f"(its arguments: {', '.join(names)})" if names else "(it takes no arguments)"
    suggestion = _suggest(key, [f"{parent}.{p}" for p in names])
    raise SeqsentError(f"+{key}: {target.rsplit('.', 1)[-1]} takes no argument {name!r}: {suggestion}{takes}")


def _node(cfg: DictConfig, dotted: str) -> object:
    """The node at `dotted` (not resolved), None where the path leaves the dicts."""
    node: object = cfg
    for part in dotted.split("."):
        # keys(), not `in` (see _has_key); _get_node raises on a key a struct config lacks
        node = node._get_node(part) if isinstance(node, DictConfig) and part in node.keys() else None  # noqa: SIM118
    return node


def check_override_keys(config_name: str, argv: list[str]) -> None:
    """Raise `SeqsentError` for the first `key=value` override (not a group choice) whose key
    `config_name` (or Hydra's config, for `hydra.*`) lacks, or the first `+key=value` that adds a
    key the config holds a value for or the built class does not take. Flags and their values are
    skipped; a group chosen by a sweep function (`model=glob(*)`) leaves the command to Hydra."""
    conf = Path(config_dir())
    choices, dotted, added, retargeted = [], [], [], set()
    for arg in overrides_of(argv):
        key, sep, value = arg.partition("=")
        if not sep or arg.startswith("~") or "@" in key:
            continue
        section, _, name = key.lstrip("+").rpartition(".")
        if name == "_target_":
            retargeted.add(section)
        if key.startswith("+"):
            # ++key: set or add, either is fine; +group=option: a config group, checked by check_group_choices
            if not key.startswith("++") and not is_config_group(conf, key[1:]):
                added.append((key[1:], value))
        elif key.startswith("hydra/") or is_config_group(conf, key):
            if "(" in value:  # glob(*), choice(a,b): which configs it picks is Hydra's to say
                return
            choices.append(f"{key}={value.split(',')[0]}")
        else:  # `model.hiden_size`, `hydra.run.dir`, or a top-level key such as `sed`
            dotted.append(key)
    if not dotted and not added:
        return
    cfg = _compose(config_name, choices)
    if cfg is None:
        return
    known = _all_keys(cfg)
    for key in dotted:
        if not _has_key(cfg, key):
            parent = _node(cfg, key.rpartition(".")[0])
            # Hydra's settings are typed, except open dicts such as hydra.job.env_set
            open_dict = isinstance(parent, DictConfig) and OmegaConf.get_type(parent) in (dict, None)
            if key.startswith("hydra.") and not open_dict:
                fix = "--cfg hydra lists Hydra's settings"
            else:
                fix = f"to add a new key, write +{key}=..."
            raise SeqsentError(f"{key} is not a setting of this config: {_suggest(key, known)}({fix})")
    for key, value in added:
        _check_added_key(cfg, key, value, retargeted)


# flags of Hydra's command line that take the next word as their value
_FLAGS_WITH_VALUE = frozenset(
    ["--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd", "--cfg", "-c", "--package", "-p"]
    + ["--info", "-i", "--experimental-rerun", "--shell-completion", "-sc"]
)


def overrides_of(argv: list[str]) -> list[str]:
    """`argv` without Hydra's flags and their values (`-m`, `--cfg job`, `-sc install=bash`)."""
    out, previous = [], ""
    for arg in argv:
        if not arg.startswith("-") and previous not in _FLAGS_WITH_VALUE:
            out.append(arg)
        previous = arg
    return out


def check_words(argv: list[str]) -> None:
    """Refuse a word that is neither an override (`key=value`, `~key`) nor a flag or a flag's value,
    such as a checkpoint path given without `ckpt_path=`, and an override Hydra's grammar cannot
    read (`model.lr=[1,`, `seed=foo(1)`): Hydra's own messages for both are multi-line."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    parser = OverridesParser.create()
    for arg in overrides_of(argv):
        if "=" not in arg and not arg.startswith("~"):
            example = f"ckpt_path={arg}" if arg.endswith(".ckpt") else "model.hidden_size=256"
            raise SeqsentError(f"{arg!r} is not an override: write key=value (e.g. {example})")
        try:
            parser.parse_overrides([arg])
        except OverrideParseException as err:
            if err.__cause__ is not None:  # a sweep or cast function given wrong arguments
                reason = str(err.__cause__).strip().splitlines()[0]
                fix = "see https://hydra.cc/docs/advanced/override_grammar/extended/"
            else:
                reason = (str(err).strip().splitlines() or ["unreadable"])[0]
                fix = "quote a value with brackets, commas or spaces, e.g. 'text=\"a, b\"'"
            raise SeqsentError(f"{arg!r} is not a valid override ({reason}): {fix}") from None


def check_overrides(config_name: str, argv: list[str]) -> None:
    """The command line's checks before Hydra runs: words that are overrides (`check_words`), group
    choices that exist (`check_group_choices`), then keys that exist (`check_override_keys`)."""
    check_words(argv)
    check_group_choices(overrides_of(argv))
    check_override_keys(config_name, argv)
