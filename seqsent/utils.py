"""Small helpers shared by the entry points: config location, resolvers, metrics files."""

from __future__ import annotations

import json
import logging
import math
import os
import secrets
import shutil
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

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
    `${hydra_subdir:CKPT,OUTPUT_DIR}`: where Hydra writes this job's config record (see `hydra_subdir`)."""
    if not OmegaConf.has_resolver("uid"):
        OmegaConf.register_new_resolver("uid", lambda: secrets.token_hex(3), use_cache=True)
    if not OmegaConf.has_resolver("resume_dir"):
        OmegaConf.register_new_resolver("resume_dir", lambda ckpt, default: str(run_dir_of(ckpt) or default))
    if not OmegaConf.has_resolver("hydra_subdir"):
        OmegaConf.register_new_resolver("hydra_subdir", hydra_subdir, use_cache=True)


FRESH_RECORD = ".hydra-new-"
RESUME_RECORD = ".hydra-resume-"
RUN_MARKERS = ("metrics.json", "checkpoints", "tensorboard")  # what a training or eval run leaves


def run_markers(run_dir: Path) -> list[str]:
    """The `RUN_MARKERS` present in `run_dir`: what says it already holds a run or an evaluation."""
    return [m for m in RUN_MARKERS if (run_dir / m).exists()]


def hydra_subdir(ckpt: Any, output_dir: Any = None) -> str:
    """`.hydra` for a new run; a fresh `.hydra-resume-<id>` for a resumed one; a fresh
    `.hydra-new-<id>` when `output_dir` already holds a `.hydra` record. Hydra writes the record
    before seqsent's checks run, so a command refused for its directory never overwrites the record
    there (`settle_hydra_record` then removes or adopts the fresh one)."""
    if run_dir_of(ckpt):
        return f"{RESUME_RECORD}{secrets.token_hex(3)}"
    if output_dir and (Path(str(output_dir)) / ".hydra").exists():
        return f"{FRESH_RECORD}{secrets.token_hex(3)}"
    return ".hydra"


def settle_hydra_record(run_dir: Path, subdir: str | None, accepted: bool) -> None:
    """For a job whose record went to a fresh `.hydra-new-<id>` (`hydra_subdir`): when the job was
    refused, remove that record; when it goes ahead, make it the directory's `.hydra` and keep the
    earlier record as `.hydra-earlier-<id>`."""
    if not subdir or not (run_dir / subdir).is_dir():
        return
    if not accepted and subdir.startswith((FRESH_RECORD, RESUME_RECORD)):
        shutil.rmtree(run_dir / subdir, ignore_errors=True)  # a refused resume leaves no record either
        return
    if not subdir.startswith(FRESH_RECORD):
        return
    suffix = subdir.removeprefix(FRESH_RECORD)
    (run_dir / ".hydra").rename(run_dir / f".hydra-earlier-{suffix}")
    (run_dir / subdir).rename(run_dir / ".hydra")


def run_dir_of(ckpt_path: Any) -> Path | None:
    """The run directory of a checkpoint at `<run>/checkpoints/<name>.ckpt`, else None."""
    if not ckpt_path or not isinstance(ckpt_path, str) or ckpt_path == "last":
        return None
    ckpt = Path(ckpt_path).expanduser().resolve()
    run = ckpt.parent.parent
    if ckpt.parent.name == "checkpoints" and (run / ".hydra").is_dir():
        return run
    return None


def check_new_output(path: Path, flag: str = "--out") -> None:
    """Refuse, before any slow work, an output path that exists or lies under a file (it could
    not be written later, and the work would be lost)."""
    if path.exists():
        raise SeqsentError(f"{path} exists: pass a new {flag} path (an earlier result is never overwritten)")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise SeqsentError(f"{flag} {path}: {parent} is a file, not a directory: pass another path")
            return


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write `text` to `path` through a temporary file and a rename (never half-written)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | os.PathLike[str], data: Mapping[str, Any]) -> None:
    """Atomically write `data` as pretty, strict JSON: NaN and infinities (a run without validation
    has no `val/acc_best`) become null, which every JSON parser reads."""
    text = json.dumps(_finite(data), indent=2, sort_keys=True, default=_plain, allow_nan=False)
    atomic_write_text(path, text + "\n")


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
    if hasattr(value, "item"):
        return value.item()
    return str(value)


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
