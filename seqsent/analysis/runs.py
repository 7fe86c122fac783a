"""Find run directories below a path and load each run's config, metrics, status and val/acc curve."""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from seqsent.errors import ERROR_FILE, SeqsentError

COMPLETED, FAILED, INCOMPLETE = "completed", "failed", "incomplete"
KNOWN_ARCHS = ("rnn", "lstm", "gru", "cnn", "transformer", "nbow")  # the order of the tables and plots
SKIP_DIRS = {".hydra", "checkpoints", "tensorboard", "__pycache__"}
SWEEP_JOB = re.compile(r"^(\d+)_")
UNGROUPED = ("seed", "ckpt_path")  # overrides that do not make runs a different configuration
# overrides that choose the architecture, already in a run's `arch`: never a setting that varies
ARCH_OVERRIDES = ("model", "model/encoder", "model.encoder.name", "model.encoder._target_", "model.cell")
ARCH_OVERRIDES += ("model.encoder.bidirectional", "model.bidirectional")


@dataclass
class Run:
    """One training run: where it is, what it trained (`arch`, `seed`, `config`) and how it ended."""

    path: Path
    name: str
    arch: str = "unknown"
    seed: int | None = None
    status: str = INCOMPLETE  # completed | failed | incomplete
    reason: str | None = None  # why it is not completed (error.txt when present)
    metrics: dict[str, Any] = field(default_factory=dict)  # metrics.json
    test_acc: float | None = None
    test_f1: float | None = None  # binary F1, or macro F1 over the classes
    val_acc_best: float | None = None
    train_seconds: float | None = None
    num_parameters: int | None = None
    config: dict[str, Any] = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)
    val_curve: list[tuple[float, float]] = field(default_factory=list)  # (epoch, val/acc), epochs from 1

    @property
    def completed(self) -> bool:
        return self.status == COMPLETED

    @property
    def best_ckpt(self) -> Path | None:
        """The best checkpoint (else the last), also when the sweep was moved since training."""
        for key in ("best_ckpt", "last_ckpt"):
            if value := self.metrics.get(key):
                for path in (Path(value), self.path / "checkpoints" / Path(value).name):
                    if path.is_file():
                        return path
        return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def architecture(encoder: Mapping[str, Any] | None) -> str | None:
    """An encoder spec's label: its `name`, else its `_target_`'s class name, with `bi-` before it when
    `bidirectional` is true; None for no spec."""
    if not isinstance(encoder, Mapping):
        return None
    name = encoder.get("name") or str(encoder.get("_target_") or "").rpartition(".")[2]
    if not name:
        return None
    return f"bi-{name}" if encoder.get("bidirectional") is True else str(name)


def arch_sort_key(arch: str) -> tuple[int, str, bool, str]:
    """rnn, lstm, gru (each followed by its bi- variant), cnn, transformer, nbow, then any other
    architecture by name; within one, its swept settings (`lstm model.lr=0.01`) in order."""
    name, _, setting = arch.partition(" ")
    base = name.removeprefix("bi-")
    rank = KNOWN_ARCHS.index(base) if base in KNOWN_ARCHS else len(KNOWN_ARCHS)
    return rank, base, name.startswith("bi-"), setting


def label_swept_settings(runs: list[Run]) -> None:
    """Append to each run's `arch` the overrides that vary between runs of that architecture (except
    the seed and those that choose the architecture, as `model/encoder=gru`): a sweep over
    `model.lr=1e-4,1e-2 seed=0,1` gives `lstm model.lr=0.0001` and `lstm model.lr=0.01`, two runs
    each, never one group of four whose spread mixes settings."""
    parsed: list[dict[str, str]] = []
    by_arch: dict[str, list[dict[str, str]]] = {}
    for run in runs:
        pairs = dict(o.lstrip("+").split("=", 1) for o in run.overrides if "=" in o)
        ignored = (*UNGROUPED, *ARCH_OVERRIDES)
        parsed.append({k: v for k, v in pairs.items() if not k.startswith(("~", "hydra")) and k not in ignored})
        by_arch.setdefault(run.arch, []).append(parsed[-1])
    varying = {
        arch: sorted(k for k in set().union(*group) if len({g.get(k) for g in group}) > 1)
        for arch, group in by_arch.items()
    }
    for run, pairs in zip(runs, parsed):
        if varying[run.arch]:
            run.arch += " " + " ".join(f"{k}={pairs.get(k, '(default)')}" for k in varying[run.arch])


def find_run_dirs(root: Path) -> list[Path]:
    """Every directory at or below `root` holding `.hydra/config.yaml`, in path order. Symbolic links
    to directories are followed (runs of several sweeps gathered as links into one directory), each
    real directory once, so a link loop ends."""
    found, seen = [], set()
    for dirpath, dirnames, _ in os.walk(root, followlinks=True):
        here, real = Path(dirpath), Path(dirpath).resolve()
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        if (here / ".hydra" / "config.yaml").is_file():
            found.append(here)
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
    return sorted(found, key=_path_key)


def _path_key(path: Path) -> list[tuple[int, str]]:
    """Sort job dirs `2_...` before `10_...`."""
    return [(int(m[1]), part) if (m := SWEEP_JOB.match(part)) else (-1, part) for part in path.parts]


def load_runs(path: str | os.PathLike[str], curves: bool = True) -> list[Run]:
    """Load every run below `path` (a sweep dir, a run dir, `outputs/`, ...), sorted by architecture."""
    root = Path(path).expanduser()
    if not root.exists():
        raise SeqsentError(f"sweep directory {root} does not exist: pass a directory written by seqsent.train")
    if not root.is_dir():
        raise SeqsentError(f"{root} is not a directory: pass a sweep dir (multirun/<date>/<time>_<id>) or a run dir")
    dirs = find_run_dirs(root)
    if not dirs:
        raise SeqsentError(
            f"{root} holds no runs (no .hydra/config.yaml below it): "
            "pass a dir written by `python -m seqsent.train -m ...` (multirun/<date>/<time>_<id>)"
        )
    runs = [load_run(d, curves=curves) for d in dirs]
    label_swept_settings(runs)
    _shorten_names(runs, root)
    return sorted(runs, key=lambda r: (arch_sort_key(r.arch), _path_key(r.path)))


def load_run(run_dir: Path, curves: bool = True) -> Run:
    """One run: its config, overrides, metrics.json (or error.txt) and, with `curves`, its val/acc."""
    run = Run(path=Path(run_dir), name=Path(run_dir).name)
    record = run.path / ".hydra"
    try:
        cfg = OmegaConf.load(record / "config.yaml")
        run.config = OmegaConf.to_container(cfg, resolve=False) if isinstance(cfg, DictConfig) else {}  # type: ignore[assignment]
        run.arch = _architecture(cfg)
        if debug := OmegaConf.select(cfg, "debug.name", throw_on_resolution_failure=False):
            run.arch += f" debug={debug}"  # a debug run (debug=...): never grouped with real runs
        seed = OmegaConf.select(cfg, "seed", throw_on_resolution_failure=False)
        if (record / "overrides.yaml").is_file():
            run.overrides = [str(o) for o in OmegaConf.load(record / "overrides.yaml")]  # type: ignore[union-attr]
    except Exception as err:
        run.status, run.reason = FAILED, f"unreadable .hydra record ({_first_line(str(err))})"
        return run
    run.seed = seed if isinstance(seed, int) and not isinstance(seed, bool) else None
    if curves:
        run.val_curve = read_val_curve(run.path)
    _read_status(run)
    return run


def _architecture(cfg: Any) -> str:
    """`model.encoder.name` (bi- prefixed when `model.encoder.bidirectional`), else `model.cell` (runs
    of seqsent before the encoder registry), else the encoder `_target_`'s class name."""

    def select(key: str) -> Any:
        return OmegaConf.select(cfg, key, throw_on_resolution_failure=False)

    encoder = {key: select(f"model.encoder.{key}") for key in ("name", "_target_", "bidirectional")}
    if not encoder["name"] and select("model.cell"):
        encoder = {"name": select("model.cell"), "bidirectional": select("model.bidirectional")}
    return architecture(encoder) or "unknown"


def _read_status(run: Run) -> None:
    metrics_file, error_file = run.path / "metrics.json", run.path / ERROR_FILE
    if metrics_file.is_file():
        try:
            run.metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
            run.status = COMPLETED
        except (OSError, ValueError) as err:
            run.status, run.reason = FAILED, f"unreadable metrics.json ({_first_line(str(err))})"
        keys = ("test/acc", "test/f1", "val/acc_best", "train_seconds", "num_parameters")
        values = (_number(run.metrics.get(key)) for key in keys)
        run.test_acc, run.test_f1, run.val_acc_best, run.train_seconds, params = values
        run.num_parameters = None if params is None else int(params)
    elif error_file.is_file():
        text = error_file.read_text(encoding="utf-8", errors="replace")
        run.status, run.reason = FAILED, _first_line(text) or "error.txt is empty"
    else:
        seen = f"; last validation at epoch {run.val_curve[-1][0]:g}" if run.val_curve else ""
        run.status, run.reason = INCOMPLETE, f"no metrics.json: still running or killed{seen}"


def _first_line(text: str, limit: int = 200) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0][:limit] if lines else ""


def read_val_curve(run_dir: Path) -> list[tuple[float, float]]:
    """`(epoch, val/acc)` pairs, epochs counted from 1, from every TensorBoard event file of a run
    (in name order, which is time order: a later file, e.g. of a resume, wins on a step)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    scalars: dict[str, dict[int, float]] = {"val/acc": {}, "epoch": {}}
    for file in sorted((run_dir / "tensorboard").rglob("events.out.tfevents.*")):
        try:
            events = EventAccumulator(str(file), size_guidance={"scalars": 0}, purge_orphaned_data=False).Reload()
            for tag in set(scalars) & set(events.Tags()["scalars"]):
                scalars[tag].update({e.step: e.value for e in events.Scalars(tag)})
        except Exception:  # a truncated file of a killed run: keep what the others hold
            continue
    val = sorted(scalars["val/acc"].items())
    return [(scalars["epoch"].get(step, index) + 1.0, value) for index, (step, value) in enumerate(val)]


def _shorten_names(runs: list[Run], root: Path) -> None:
    """Name runs by their path below `root`; a job dir named `<num>_<override_dirname>` (with `=`) becomes
    `<num>_<overrides that vary between runs>`, short names such as `4_lstm_seed1` stay."""
    common = set.intersection(*(set(r.overrides) for r in runs))
    for run in runs:
        rel = run.path.relative_to(root) if run.path != root else Path(run.path.name)
        match = SWEEP_JOB.match(rel.name)
        short = rel.name
        if match and "=" in rel.name and run.overrides:
            varying = [o for o in run.overrides if o not in common]
            short = f"{match[1]}_{','.join(varying)}" if varying else match[1]
        run.name = (rel.parent / short).as_posix()


def newest_sweep(base: str | os.PathLike[str]) -> Path:
    """The newest `<date>/<time>_<id>` sweep dir under `base` (e.g. `multirun/`), by name."""
    base = Path(base).expanduser()
    candidates = sorted((p for p in base.glob("*/*") if p.is_dir()), reverse=True) if base.is_dir() else []
    for sweep in candidates:
        if find_run_dirs(sweep):
            return sweep
    raise SeqsentError(
        f"no sweep found under {base}: run `python -m seqsent.train -m model=rnn,lstm,gru seed=0,1,2` "
        "or set SEQSENT_SWEEP_DIR"
    )
