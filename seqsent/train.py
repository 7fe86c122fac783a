"""Train a recurrent sentiment classifier, then test its best checkpoint.

    python -m seqsent.train                                 # the default (best) LSTM recipe
    python -m seqsent.train experiment=seed_lstm            # the notebook's LSTM
    python -m seqsent.train model/encoder=cnn data=trec6    # another encoder, another dataset
    python -m seqsent.train model=rnn trainer.max_epochs=3  # any config value can be overridden
    python -m seqsent.train -m model/encoder=rnn,lstm,gru,cnn,transformer,nbow seed=0,1  # a Hydra sweep
    python -m seqsent.train ckpt_path=RUN/checkpoints/last.ckpt   # resume RUN in place

Writes into the Hydra run dir: `checkpoints/` (best on val/acc and last), `tensorboard/`,
`metrics.json`. Returns `optimized_metric` for Hydra sweepers.
"""

from __future__ import annotations

import functools
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities.exceptions import SIGTERMException
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from seqsent.allocator import keep_freed_memory
from seqsent.builders import (
    AtFirstTrainingBatch,
    build_loggers,
    build_trainer,
    finalize_loggers,
    instantiate_group,
    log_hparams,
    logger_hints,
    run_tags,
    tensorboard_dir,
)
from seqsent.callbacks import EpochTimer
from seqsent.checkpoint import read_checkpoint
from seqsent.errors import SeqsentError, check_types, clear_recorded_failure, report_job_errors
from seqsent.finetune import copy_weights, prepare
from seqsent.models.word_vectors import load_for_data, vectors_file
from seqsent.reliability import DATA_KEY, FINISHED_KEY
from seqsent.utils import config_dir, quiet_lightning, register_resolvers, run_markers, write_json, write_record

register_resolvers()

# data settings a resume may change: they change how fast batches come, not which
SPEED_ONLY_DATA = ("eval_batch_size", "num_workers", "worker_start_method", "pin_memory", "cache_dir", "fixed_length")


def check_run_dir(run_dir: Path, ckpt_path: str | None) -> None:
    """Refuse to write a new run into a directory that holds another run (resuming is fine, and so is
    a SLURM job requeued into its unfinished run: Lightning resumes it from its `hpc_ckpt_*.ckpt`)."""
    found = run_markers(run_dir)
    if not found or (requeued(run_dir) and "metrics.json" not in found):
        return
    if ckpt_path == "last" or (ckpt_path and Path(ckpt_path).resolve().is_relative_to(run_dir.resolve())):
        return
    raise SeqsentError(
        f"output directory {run_dir} already holds a run ({', '.join(found)}): choose another hydra.run.dir, "
        f"or resume it with ckpt_path={run_dir}/checkpoints/last.ckpt"
    )


def requeued(run_dir: Path) -> bool:
    """Whether this is a SLURM job whose run dir holds Lightning's auto-requeue checkpoint."""
    return SLURMEnvironment.detect() and any(run_dir.glob("hpc_ckpt_*.ckpt"))


def check_trains(trainer_cfg: DictConfig) -> None:
    """Refuse limits under which `fit` trains nothing: the test would score an untrained model and
    `metrics.json` would read as a trained run's."""
    for key in ("max_epochs", "max_steps", "limit_train_batches"):
        if trainer_cfg.get(key) == 0:
            raise SeqsentError(f"trainer.{key}=0 trains nothing (the test would score an untrained model): use >= 1")


def setting_changes(cfg: DictConfig, ckpt: dict) -> list[str]:
    """The model and data settings configured otherwise than the checkpoint's run had them (data settings
    that only change speed may differ: `SPEED_ONLY_DATA`)."""
    data = ckpt.get(DATA_KEY) if isinstance(ckpt.get(DATA_KEY), dict) else {}
    model = OmegaConf.to_container(cfg.model, resolve=True)
    from_data = ("num_classes",) if model.get("num_classes") is None else ()  # the data's: checked when it loads
    differ = differing("model", model, ckpt["hyper_parameters"], from_data)
    return differ + differing("data", OmegaConf.to_container(cfg.data, resolve=True), data, SPEED_ONLY_DATA)


def resolve_resume(
    cfg: DictConfig, run_dir: Path, changes: Callable[[DictConfig, dict], list[str]] = setting_changes
) -> str | None:
    """The checkpoint to resume from (`last` means this run dir's last.ckpt), checked to be a
    readable seqsent checkpoint of an unfinished run whose settings are the configured ones
    (`changes` lists those that differ: `setting_changes` for a classifier)."""
    ckpt_path = cfg.get("ckpt_path")
    if not ckpt_path:
        return None
    if ckpt_path == "last":
        ckpt_path = str(run_dir / "checkpoints" / "last.ckpt")
    ckpt = read_checkpoint(ckpt_path)
    check_unfinished(ckpt, cfg, ckpt_path)
    differ = changes(cfg, ckpt)
    if differ:
        raise SeqsentError(
            f"{ckpt_path} was trained with other settings: {', '.join(differ[:4])}: "
            "pass the run's overrides again (see its .hydra/overrides.yaml)"
        )
    return ckpt_path


def differing(section: str, configured: dict, recorded: dict, ignored: tuple[str, ...] = ()) -> list[str]:
    """`section.key=configured (checkpoint: recorded)` for each recorded setting configured otherwise
    (nested settings, as `model.encoder.*`, key by key)."""
    found = []
    for k, v in recorded.items():
        if k not in configured or k in ignored:
            continue
        if isinstance(v, dict) and isinstance(configured[k], dict):
            found += differing(f"{section}.{k}", configured[k], v)
        elif not same_setting(configured[k], v):
            found.append(f"{section}.{k}={configured[k]!r} (checkpoint: {v!r})")
    return found


def same_setting(a: object, b: object) -> bool:
    """Equal values, or two spellings of one existing path (`data.path`)."""
    if a == b:
        return True
    if not (isinstance(a, str) and isinstance(b, str)):
        return False
    first, second = Path(a).expanduser(), Path(b).expanduser()
    return first.exists() and second.exists() and first.resolve() == second.resolve()


def check_unfinished(ckpt: dict, cfg: DictConfig, ckpt_path: str) -> None:
    """Refuse to resume a checkpoint of a run that reached the end of its training, unless the
    configured limits now let it train longer: Lightning would train nothing (or little), and the
    run's `metrics.json` would be rewritten. A checkpoint saved at the end (`FINISHED_KEY`) says
    which limits the run ended under, also when something else stopped it (early stopping)."""
    try:
        epoch, step = int(ckpt.get("epoch", 0)), int(ckpt.get("global_step", 0))
    except (TypeError, ValueError):
        raise SeqsentError(f"{ckpt_path} is damaged: its epoch or global_step is not a number") from None
    max_epochs, max_steps = cfg.trainer.get("max_epochs"), cfg.trainer.get("max_steps")
    reached = [f"trainer.max_epochs={max_epochs}"] if max_epochs is not None and 0 <= max_epochs <= epoch else []
    reached += [f"trainer.max_steps={max_steps}"] if max_steps is not None and 0 < max_steps <= step else []
    ended = ckpt.get(FINISHED_KEY)
    if not reached and isinstance(ended, dict) and not trains_longer(max_epochs, max_steps, ended):
        if isinstance(stopped := ended.get("stopped_early"), dict):
            raise SeqsentError(
                f"{ckpt_path} was ended by early stopping after {epoch} epochs (on {stopped.get('monitor')}, "
                f"patience {stopped.get('patience')}): nothing to resume. Test it with python -m seqsent.eval "
                f"ckpt_path={ckpt_path}, or train a new run with a higher callbacks.early_stopping.patience "
                "(a higher trainer.max_epochs trains on until the next validation without improvement)"
            )
        reached = [f"it ended under trainer.max_epochs={ended.get('max_epochs')}, max_steps={ended.get('max_steps')}"]
    if reached:
        raise SeqsentError(
            f"{ckpt_path} has finished training ({epoch} epochs, {step} steps; {', '.join(reached)}): "
            f"nothing to resume. Test it with python -m seqsent.eval ckpt_path={ckpt_path}, "
            "or train longer with a higher trainer.max_epochs (or trainer.max_steps)"
        )


def trains_longer(max_epochs: int | None, max_steps: int | None, ended: dict) -> bool:
    """Whether these limits are beyond those a finished run ended under (-1 or null: no limit)."""

    def limit(value: object) -> float:
        return value if isinstance(value, int) and value >= 0 else float("inf")

    return limit(max_epochs) > limit(ended.get("max_epochs")) or limit(max_steps) > limit(ended.get("max_steps"))


def check_model(model_cfg: DictConfig) -> None:
    """Build the model once on the meta device (no memory, no weights drawn, the random state kept), so a
    bad model setting is refused before the data, which the class count comes from, is prepared."""
    with torch.random.fork_rng(devices=[]), torch.device("meta"):
        configured = model_cfg.get("num_classes")
        instantiate(model_cfg, num_classes=2 if configured is None else configured)


def num_classes(datamodule: L.LightningDataModule, configured: int | None) -> int:
    """The data's class count (the data is prepared and set up here to read it); a configured
    `model.num_classes` that disagrees is a `SeqsentError`."""
    datamodule.prepare_data()
    datamodule.setup("fit")
    found = datamodule.num_classes
    if configured is not None and configured != found:
        raise SeqsentError(
            f"model.num_classes={configured} but the data ({datamodule.path}) has {found} classes "
            f"({', '.join(map(str, datamodule.label_names))}): use model.num_classes=null (the data's count)"
        )
    return found


def check_launch(trainer: L.Trainer) -> None:
    """Refuse Lightning's local DDP launch inside a Hydra multirun: it re-runs the whole command
    (sweep included) once per rank, the reason its launcher is not "interactive compatible".
    Sweeps run DDP through hydra/launcher=slurm, where SLURM starts the processes (no launcher)."""
    launcher = trainer.strategy.launcher
    if launcher and not launcher.is_interactive_compatible and HydraConfig.get().mode == RunMode.MULTIRUN:
        raise SeqsentError(
            "trainer=ddp cannot start its processes inside a Hydra multirun (-m): run each configuration "
            "without -m, or sweep with hydra/launcher=slurm"
        )


@report_job_errors
def train(cfg: DictConfig) -> dict:
    """Fit, test the best checkpoint, write `metrics.json`; returns the metrics."""
    keep_freed_memory()
    run_dir, first = begin_run(cfg)
    lm = prepare(cfg)  # model.pretrained: the language model's vocabulary and sizes into cfg
    ckpt_path = resolve_resume(cfg, run_dir)
    vectors = None if ckpt_path else cfg.model.get("pretrained_embeddings")  # resuming: the checkpoint holds them
    if vectors:
        vectors_file(vectors)  # a missing file is refused before the data is prepared
    record_run(cfg, run_dir, first, ckpt_path)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = instantiate(cfg.data)
    check_model(cfg.model)
    model = instantiate(cfg.model, num_classes=num_classes(datamodule, cfg.model.get("num_classes")))
    if lm is not None and not ckpt_path:  # a resumed run's checkpoint holds the weights
        copied = copy_weights(model.net, lm)
        if first:
            print(copied, flush=True)
    del lm
    coverage = load_for_data(model.net.embedding, vectors, datamodule) if vectors else None
    if coverage and first:
        print(coverage.summary(), flush=True)
    trainer, loggers, train_seconds = fit_run(cfg, model, datamodule, run_dir, ckpt_path, first)
    metrics: dict = {
        "val/acc_best": float(trainer.callback_metrics.get("val/acc_best", float("nan"))),
        **run_metrics(trainer, model, datamodule, cfg, run_dir, train_seconds),
        **(coverage.metrics() if coverage else {}),
    }
    if getattr(datamodule, "soft_labels", None):
        metrics["train_reviews"] = len(datamodule.train_set)
        metrics["soft_labeled_reviews"] = datamodule.soft_added
        metrics["soft_labels"] = str(datamodule.soft_labels)
    if cfg.get("test"):
        results = trainer.test(model, datamodule=datamodule, ckpt_path=metrics["best_ckpt"], verbose=False)
        metrics.update({k: float(v) for k, v in results[0].items()})
    finish_run(trainer, loggers, metrics, run_dir, lambda hints: summary(metrics, run_dir, hints))
    return metrics


def begin_run(cfg: DictConfig) -> tuple[Path, bool]:
    """The checks a fitting run makes first: the seed's type, limits that train something and, on the
    first process, a run dir that holds no other run. Returns the run dir and whether this is the first
    (rank-zero) process."""
    check_types(L.seed_everything, {"seed": cfg.seed})
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    first = rank_zero_only.rank == 0  # DDP ranks > 0 share rank 0's run dir, which it may have filled already
    check_trains(cfg.trainer)
    if first:
        check_run_dir(run_dir, cfg.get("ckpt_path"))
    return run_dir, first


def record_run(cfg: DictConfig, run_dir: Path, first: bool, ckpt_path: str | None) -> None:
    """A new run's command record (a resumed run records itself once it trains: `record_start`)."""
    if first and not ckpt_path:
        write_record(cfg)
        clear_recorded_failure(run_dir)


def fit_run(
    cfg: DictConfig,
    model: L.LightningModule,
    datamodule: L.LightningDataModule,
    run_dir: Path,
    ckpt_path: str | None,
    first: bool,
    section: str = "model",
) -> tuple[L.Trainer, list[Logger], float]:
    """Fit `model` with the config's callbacks, loggers and trainer, resuming `ckpt_path`; returns the trainer,
    the loggers and the fit's seconds. A non-finite loss or gradient is a one-line error naming `<section>.lr`;
    SIGTERM and Ctrl+C end the process with 128 + the signal, saying how to resume."""
    callbacks = instantiate_group(cfg.get("callbacks"))
    tags = run_tags(cfg)
    loggers = build_loggers(cfg.get("logger"), tags)
    if not loggers:  # ~logger: Lightning refuses a learning-rate monitor with nothing to log to
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    start_record = AtFirstTrainingBatch(functools.partial(record_start, cfg, loggers, tags, run_dir, bool(ckpt_path)))
    trainer = build_trainer(cfg, [*callbacks, start_record], loggers)
    check_launch(trainer)

    start = time.perf_counter()
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
    except FloatingPointError as err:
        last = run_dir / "checkpoints" / "last.ckpt"
        kept = f"last good checkpoint kept: {last}" if last.is_file() else "no checkpoint was written yet"
        raise SeqsentError(f"{err}: lower {section}.lr or set trainer.gradient_clip_val; {kept}") from None
    except SeqsentError:
        if ckpt_path and not start_record.done:  # a refused resume leaves nothing in the run it tried to continue
            drop_own_events(loggers)
        raise
    except SystemExit as stop:  # how Lightning ends a fit on SIGTERM (SIGTERMException) and on Ctrl+C
        if not trainer.interrupted:
            raise
        raise SystemExit(interrupted(stop, run_dir / "checkpoints" / "last.ckpt", first)) from None
    train_seconds = time.perf_counter() - start
    return trainer, loggers, train_seconds


def run_metrics(
    trainer: L.Trainer,
    model: L.LightningModule,
    datamodule: L.LightningDataModule,
    cfg: DictConfig,
    run_dir: Path,
    train_seconds: float,
) -> dict:
    """What every run's `metrics.json` records: epochs, steps, seconds, checkpoints, parameters, and when
    known the debug preset, each epoch's seconds and the data preparation's."""
    checkpoint = next((c for c in trainer.callbacks if isinstance(c, ModelCheckpoint)), None)
    metrics: dict = {
        "epochs": trainer.current_epoch,
        "global_steps": trainer.global_step,
        "train_seconds": round(train_seconds, 2),
        "best_ckpt": checkpoint.best_model_path if checkpoint and checkpoint.best_model_path else None,
        "last_ckpt": checkpoint.last_model_path if checkpoint and checkpoint.last_model_path else None,
        "run_dir": str(run_dir),
        "num_parameters": sum(p.numel() for p in model.parameters()),
    }
    if cfg.get("debug"):  # debug=...: seqsent.compare labels the run apart from real ones
        metrics["debug"] = str(cfg.debug.get("name"))
    timer = next((c for c in trainer.callbacks if isinstance(c, EpochTimer)), None)
    if timer and timer.epoch_seconds:
        metrics["epoch_seconds"] = [round(s, 2) for s in timer.epoch_seconds]
    if datamodule.prep_seconds is not None:
        metrics["prep_seconds"] = round(datamodule.prep_seconds, 2)
    return metrics


def finish_run(
    trainer: L.Trainer, loggers: list[Logger], metrics: dict, run_dir: Path, text: Callable[[list[str]], str]
) -> None:
    """Log the training seconds, close the loggers and (rank zero) write `metrics.json` and print `text` of
    the loggers' hints."""
    for logger in loggers:
        logger.log_metrics({"time/train_seconds": metrics["train_seconds"]}, step=trainer.global_step)
    hints = logger_hints(loggers)  # before a W&B run is finished
    finalize_loggers(loggers)
    if trainer.is_global_zero:
        write_json(run_dir / "metrics.json", metrics)
        print(text(hints), flush=True)


def interrupted(stop: SystemExit, last: Path, report: bool) -> int:
    """Say (when `report`) how to resume a fit ended by SIGTERM (`LastCheckpoint` saved `last` at
    the step it arrived) or Ctrl+C (`last` is the newest checkpoint); the exit code, 128 + signal."""
    signum = signal.SIGTERM if isinstance(stop, SIGTERMException) else signal.SIGINT
    if report:
        how = f"resume with ckpt_path={last}" if last.is_file() else "no checkpoint was written yet: start it again"
        print(f"training was interrupted ({signum.name}); {how}", file=sys.stderr, flush=True)
    return 128 + signum


def drop_own_events(loggers: list[Logger]) -> None:
    """Delete the TensorBoard event files this process wrote: Lightning opens one when fitting
    starts, before anything that can refuse a resume (data setup, the checkpoint's schedule) runs."""
    tb_dir = tensorboard_dir(loggers)
    if rank_zero_only.rank == 0 and tb_dir is not None:
        for events in tb_dir.glob(f"events.out.tfevents.*.{socket.gethostname()}.{os.getpid()}.*"):
            events.unlink()


def record_start(cfg: DictConfig, loggers: list[Logger], tags: dict[str, str], run_dir: Path, resumed: bool) -> None:
    """At the first training batch: the config and the run's tags in every logger (TensorBoard's HPARAMS)
    and, for a resumed run, its command record (`.hydra/resume-<n>/`). A resume refused before it trains
    so changes nothing in the run."""
    log_hparams(loggers, cfg, tags)
    if resumed:
        write_record(cfg, resumed=True)
        clear_recorded_failure(run_dir)


def summary(
    metrics: dict,
    run_dir: Path,
    hints: list[str],
    shown: tuple[str, ...] = ("test/acc", "test/f1", "test/auroc", "test/loss", "val/acc_best"),
    notes: tuple[str, ...] | list[str] = (),
) -> str:
    """The final lines: the `shown` metrics, epochs, time and size, `notes`, the checkpoint, the files."""
    debug = f" (a debug run: debug={metrics['debug']})" if "debug" in metrics else ""
    lines = ["", f"== seqsent run finished =={debug}"]
    lines.append("  " + "  ".join(f"{k} {metrics[k]:.4f}" for k in shown if k in metrics))
    lines.append(
        f"  epochs {metrics['epochs']}  train {metrics['train_seconds']:.0f}s  params {metrics['num_parameters']:,}"
    )
    if "soft_labels" in metrics:
        lines.append(
            f"  trained on {metrics['train_reviews']:,} reviews, {metrics['soft_labeled_reviews']:,} of them "
            f"soft-labeled ({metrics['soft_labels']})"
        )
    lines += [f"  {note}" for note in notes]
    lines.append(f"  best checkpoint: {metrics['best_ckpt']}")
    lines.append(f"  metrics: {run_dir / 'metrics.json'}")
    lines += [f"  {hint}" for hint in hints]  # each logger's files and how to look at them
    return "\n".join(lines)


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="train")
def _hydra_main(cfg: DictConfig) -> float | None:
    metrics = train(cfg)
    value = metrics.get(cfg.get("optimized_metric") or "")
    return float(value) if value is not None else None


def main() -> None:
    """Console entry point: Hydra's command line (`--help`; Hydra names unknown keys and options)."""
    quiet_lightning()
    _hydra_main()


if __name__ == "__main__":
    main()
