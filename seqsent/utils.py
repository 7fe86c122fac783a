"""Small helpers shared by the entry points: config location, resolvers, metrics files."""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import secrets
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from seqsent.errors import SeqsentError


def config_dir() -> str:
    """Absolute path of the Hydra config directory (repo checkout or installed wheel)."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "conf", here / "conf"):
        if (candidate / "train.yaml").is_file():
            return str(candidate)
    raise FileNotFoundError(f"seqsent configs not found next to {here}")


def register_resolvers() -> None:
    """`${uid:}`: a short random id, cached per config, so run dirs never collide.
    `${resume_dir:CKPT,DEFAULT}`: the run dir that holds checkpoint CKPT, else DEFAULT.
    The data configs' `${data_path:...}` and `${if_hub:...}` (`seqsent.data.sources.register_resolvers`)."""
    from seqsent.data.sources import register_resolvers as register_data_resolvers

    register_data_resolvers()
    if not OmegaConf.has_resolver("uid"):
        OmegaConf.register_new_resolver("uid", lambda: secrets.token_hex(3), use_cache=True)
    if not OmegaConf.has_resolver("resume_dir"):
        OmegaConf.register_new_resolver("resume_dir", lambda ckpt, default: str(run_dir_of(ckpt) or default))


RUN_MARKERS = ("metrics.json", "checkpoints", "tensorboard")  # what a training or eval run leaves
RECORD = ".hydra"  # the command record of a run: Hydra's layout, written by seqsent (`write_record`)


def run_markers(run_dir: Path, markers: tuple[str, ...] = RUN_MARKERS) -> list[str]:
    """The `markers` present in `run_dir`: what says it already holds a run or an evaluation."""
    return [m for m in markers if (run_dir / m).exists()]


def check_run_dir_free(run_dir: Path, held: str, fix: str, markers: tuple[str, ...] = RUN_MARKERS) -> None:
    """Refuse, before any work, a run directory holding a run or an earlier `held` output (nothing is replaced)."""
    found = run_markers(run_dir, markers)
    if found:
        raise SeqsentError(f"output directory {run_dir} already holds a run or {held} ({', '.join(found)}): {fix}")


def write_record(cfg: DictConfig, resumed: bool = False) -> None:
    """Hydra's record of this job in the run dir's `.hydra/` (a run resumed in place: `.hydra/resume-<n>/`).
    `hydra.output_subdir` is null: the entry points call this once they accepted the job, so a command
    refused for its directory leaves that directory as it was."""
    hydra_cfg = HydraConfig.get()
    record = Path(hydra_cfg.runtime.output_dir) / RECORD
    if resumed and record.is_dir():
        record = record / f"resume-{len(list(record.glob('resume-*'))) + 1}"
    record.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(recorded_config(cfg), record / "config.yaml")
    OmegaConf.save(OmegaConf.create({"hydra": hydra_cfg}), record / "hydra.yaml")
    OmegaConf.save(hydra_cfg.overrides.task, record / "overrides.yaml")


def recorded_config(cfg: DictConfig) -> DictConfig:
    """`cfg` as a run's record keeps it: a vocabulary given whole in `data.tokenizer_json` (a language model's,
    `model.pretrained` or `init_from`) as `sha256:<digest>`, so the record stays a readable page and
    `seqsent.compare` a narrow table; the checkpoints, and the language model the record names, hold the vocabulary."""
    from seqsent.data.vocab import vocabulary_digest  # lazily, as register_resolvers imports seqsent.data

    given = OmegaConf.select(cfg, "data.tokenizer_json", throw_on_missing=False)
    if not isinstance(given, str) or given.startswith("sha256:"):
        return cfg
    short = cfg.copy()
    short.data.tokenizer_json = "sha256:" + vocabulary_digest(given)
    return short


def run_dir_of(ckpt_path: Any) -> Path | None:
    """The run directory of a checkpoint at `<run>/checkpoints/<name>.ckpt`, else None."""
    if not ckpt_path or not isinstance(ckpt_path, str) or ckpt_path == "last":
        return None
    ckpt = Path(ckpt_path).expanduser().resolve()
    run = ckpt.parent.parent
    if ckpt.parent.name == "checkpoints" and (run / RECORD).is_dir():
        return run
    return None


def check_new_output(path: Path, flag: str = "--out") -> None:
    """Refuse, before any slow work, an output path that exists, lies under a file or in a directory
    this process may not write (it could not be written later, and the work would be lost)."""
    if path.exists():
        raise SeqsentError(f"{path} exists: pass a new {flag} path (an earlier result is never overwritten)")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise SeqsentError(f"{flag} {path}: {parent} is a file, not a directory: pass another path")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise SeqsentError(f"{flag} {path}: {parent} is not writable for you: pass another path")
            return


def output_error(path: str | os.PathLike[str], err: OSError, setting: str) -> SeqsentError:
    """The one-line error for an output that could not be written (a full disk, no permission, a
    file where a directory should be); `setting` is what chooses the place, e.g. `hydra.run.dir`."""
    reason = err.strerror or str(err) or type(err).__name__
    full = err.errno in (errno.ENOSPC, errno.EDQUOT)
    return SeqsentError(f"cannot write {path}: {reason}: {'free space there or ' if full else ''}use another {setting}")


def atomic_write_text(path: str | os.PathLike[str], text: str, setting: str = "output directory") -> None:
    """Write `text` to `path` through a temporary file and a rename (never half-written); a failed
    write is a one-line `output_error` naming `setting` and leaves an earlier file at `path` as it was."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise output_error(path, err, setting) from err
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            umask = os.umask(0o022)  # the umask is read by setting it: put it back at once
            os.umask(umask)
            os.fchmod(fh.fileno(), 0o666 & ~umask)  # mkstemp makes it 0600
            fh.write(text)
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise output_error(path, err, setting) from err
        raise


def write_json(path: str | os.PathLike[str], data: Mapping[str, Any], setting: str = "output directory") -> None:
    """Atomically write `data` as pretty, strict JSON (`atomic_write_text`): NaN and infinities (a run
    without validation has no `val/acc_best`) become null, which every JSON parser reads."""
    text = json.dumps(_finite(data), indent=2, sort_keys=True, default=_plain, allow_nan=False)
    atomic_write_text(path, text + "\n", setting)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:  # numpy / torch scalars
        return _finite(value.item())
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else str(value)


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested mappings to `a/b/c` keys with plain scalar values (for HPARAMS)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, prefix=f"{name}/"))
        elif value is None or isinstance(value, (bool, int, float, str)):
            out[name] = value if value is not None else "None"
        else:
            out[name] = str(value)
    return out


LIGHTNING_TIP = "\N{ELECTRIC LIGHT BULB} Tip:"  # Lightning's advertisements (litlogger, litmodels)


def quiet_lightning() -> None:
    """Leave out of the console and the run's log what is not the user's to act on: Lightning's
    advertising tips, and the deprecation warning torch raises inside Lightning (`LeafSpec`)."""
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    rank_zero.addFilter(lambda record: not str(record.msg).startswith(LIGHTNING_TIP))
    warnings.filterwarnings("ignore", r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning)
