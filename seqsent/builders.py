"""Build Lightning objects from Hydra config groups (callbacks, loggers, trainer)."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from hydra.utils import get_object, instantiate
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.accelerators import CPUAccelerator
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import CSVLogger, Logger, MLFlowLogger, TensorBoardLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_warn
from omegaconf import DictConfig, OmegaConf
from torch.utils.tensorboard.summary import hparams

from seqsent.checkpoint import preprocessing_of
from seqsent.errors import SeqsentError, check_types
from seqsent.utils import flatten

NOT_HPARAMS = ("callbacks/", "logger/", "trainer/default_root_dir")  # machinery and paths, not HPARAMS
LOGGER_EXTRAS = ("mlflow", "wandb")  # seqsent extras named after the package they install for a logger


def instantiate_group(group: DictConfig | None) -> list[Any]:
    """Instantiate every entry with a `_target_` in a config group (callbacks, loggers)."""
    if not group:
        return []
    return [instantiate(node) for node in group.values() if isinstance(node, DictConfig) and "_target_" in node]


def run_tags(cfg: DictConfig) -> dict[str, str]:
    """What groups this run with others, for every logger: `run_name`, and in a Hydra multirun the
    `sweep` (its directory's name) and `job` number; `overrides`, the command's overrides (a sweep
    job's own values included)."""
    hydra_cfg = HydraConfig.get()
    overrides = [o for o in hydra_cfg.overrides.task if not o.lstrip("+~").startswith("hydra")]
    tags = {"run_name": str(cfg.get("run_name"))}
    if hydra_cfg.mode == RunMode.MULTIRUN:
        tags |= {"sweep": Path(hydra_cfg.sweep.dir).name, "job": str(hydra_cfg.job.num)}
    if overrides:
        tags["overrides"] = " ".join(overrides)
    return tags


def build_loggers(group: DictConfig | None, tags: dict[str, str]) -> list[Logger]:
    """The `logger` group's loggers, with the run's `tags` as MLflow tags and W&B tags and group (where
    the config leaves them null); a logger whose package is missing is a `SeqsentError` naming the extra."""
    loggers = []
    for name, node in (group or {}).items():
        if not (isinstance(node, DictConfig) and "_target_" in node):
            continue
        cls = logger_class(node._target_)
        if cls is not None and issubclass(cls, WandbLogger):
            finish_failed_wandb_run()
        try:
            loggers.append(instantiate(node, **native_tags(cls, node, tags)))
        except InstantiationException as err:
            if isinstance(err.__cause__, ModuleNotFoundError) and (extra := missing_extra(str(err.__cause__))):
                raise SeqsentError(f"logger={name} needs the {extra} extra: pip install seqsent[{extra}]") from err
            raise
    return loggers


def finalize_loggers(loggers: list[Logger]) -> None:
    """End a successful run in every logger. A W&B run is also finished: Lightning's `WandbLogger` reuses
    a run still open in the process, so the next job of a multirun would log into this one."""
    for logger in loggers:
        logger.finalize("success")
        if isinstance(logger, WandbLogger):
            logger.experiment.finish()


def finish_failed_wandb_run() -> None:
    """Finish, as failed, the W&B run a failed earlier job of this multirun left open (none when no job
    imported wandb)."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.run.finish(exit_code=1)


def logger_class(target: str) -> type | None:
    """The class a logger's `_target_` names; None for a function or what cannot be loaded (`instantiate`
    then says why)."""
    try:
        found = get_object(target)
    except ImportError:
        return None
    return found if isinstance(found, type) else None


def native_tags(cls: type | None, node: DictConfig, tags: dict[str, str]) -> dict[str, Any]:
    """`tags` in the form the logger class `cls` takes them: a dict for MLflow, `key=value` strings (W&B's
    limit, 64 characters each) and the sweep as group for W&B; nothing for the others (they get `tags/*`
    as hyperparameters, `log_hparams`)."""
    if cls is None:
        return {}
    if issubclass(cls, MLFlowLogger) and node.get("tags") is None:
        return {"tags": dict(tags)}
    if issubclass(cls, WandbLogger):
        found = {"tags": [f"{k}={v}"[:64] for k, v in tags.items()]} if node.get("tags") is None else {}
        return found | ({"group": tags["sweep"]} if node.get("group") is None and "sweep" in tags else {})
    return {}


def missing_extra(reason: str) -> str | None:
    """The seqsent extra that installs the package a `ModuleNotFoundError` names, if any."""
    return next((extra for extra in LOGGER_EXTRAS if extra in reason), None)


def build_trainer(cfg: DictConfig, callbacks: list[Callback], loggers: list[Logger]) -> L.Trainer:
    """The Trainer from `cfg.trainer` plus callbacks and loggers; a setting Lightning rejects is a `SeqsentError`."""
    trainer_args = OmegaConf.to_container(cfg.trainer, resolve=True)
    check_types(L.Trainer.__init__, {k: v for k, v in trainer_args.items() if not k.startswith("_")}, "trainer.")
    clip = trainer_args.get("gradient_clip_val")
    if clip is not None and clip < 0:  # torch would scale the gradients by a negative factor
        raise SeqsentError(f"trainer.gradient_clip_val={clip}: use a positive norm, e.g. 1.0, or null for none")
    try:
        # enable_autolog_hparams=False: the loggers get the whole config at the first training batch
        # (`log_hparams`) instead of Lightning's copy of the model's arguments
        trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, enable_autolog_hparams=False)
    except InstantiationException as err:
        if isinstance(err.__cause__, (MisconfigurationException, ValueError, TypeError, ModuleNotFoundError)):
            raise SeqsentError(f"trainer settings rejected by Lightning: {trainer_fix(str(err.__cause__))}") from err
        raise
    if isinstance(trainer.accelerator, CPUAccelerator) and trainer.precision == "bf16-mixed" and not cpu_has_bf16():
        rank_zero_warn(
            "trainer.precision=bf16-mixed on a CPU without native bf16 instructions (AVX512-BF16 or AMX): "
            "bf16 is emulated there (the LSTM runs in fp32: oneDNN has no bf16 LSTM kernel for it) and likely "
            "slower than fp32; use trainer.precision=32-true"
        )
    return trainer


def trainer_fix(reason: str) -> str:
    """Lightning's reason on one line, with the likely fix."""
    reason = " ".join(reason.split()).rstrip(".!")
    if not torch.cuda.is_available() and any(w in reason.lower() for w in ("gpu", "cuda")):
        return f"{reason}: no GPU is visible to torch here: use trainer=cpu or trainer.accelerator=auto"
    if "devices" in reason:
        return f"{reason}: use trainer.devices=auto or a positive count"
    return f"{reason}: fix the trainer.* override (see conf/trainer/ and Lightning's Trainer arguments)"


def cpu_has_bf16() -> bool:
    """Whether oneDNN has native bf16 instructions on this CPU; True where this torch cannot tell."""
    if not hasattr(torch.cpu, "get_capabilities"):
        return True
    caps = torch.cpu.get_capabilities()
    return torch.backends.mkldnn.is_available() and any(caps.get(f, False) for f in ("avx512_bf16", "amx_bf16", "bf16"))


class AtFirstTrainingBatch(Callback):
    """Run `action` once, at the first training batch, on the global-zero process: what a run refused
    or failing before it trains must not leave behind (its HPARAMS record, a resumed run's command record)."""

    def __init__(self, action: Callable[[], None]) -> None:
        self.action, self.done = action, False

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        if not self.done and trainer.is_global_zero:
            self.action()
        self.done = True


def log_hparams(loggers: list[Logger], cfg: DictConfig, tags: dict[str, str] | None = None) -> None:
    """Log the whole resolved config and the run's `tags` (as `tags/<key>`) once, to every logger.
    TensorBoard gets the HPARAMS session record of the config alone (no experiment record: its HPARAMS
    tab then takes the columns from all runs' sessions, and marks as differing only settings, not the job
    number; no placeholder metrics), and the tags as the text `tags`."""
    config = flatten(OmegaConf.to_container(cfg, resolve=True))  # type: ignore[arg-type]
    config = {k: _short(v) for k, v in config.items() if not k.endswith("_target_") and not k.startswith(NOT_HPARAMS)}
    tagged = config | {f"tags/{k}": v for k, v in (tags or {}).items()}
    for logger in loggers:
        logger.log_hyperparams(tagged)  # TensorBoardLogger, CSVLogger: their hparams.yaml
        if isinstance(logger, TensorBoardLogger):
            _, session_start, _ = hparams(config, {})
            logger.experiment.file_writer.add_summary(session_start)
            if tags:
                logger.experiment.add_text("tags", "  \n".join(f"{k}: {v}" for k, v in tags.items()))


def _short(value: Any, limit: int = 500) -> Any:
    """Long strings (a `data.tokenizer_json` vocabulary) as their length and hash, not the text."""
    if isinstance(value, str) and len(value) > limit:
        return f"<{len(value)} chars, sha256 {hashlib.sha256(value.encode()).hexdigest()[:16]}>"
    return value


def tensorboard_dir(loggers: list[Logger]) -> Path | None:
    return next((Path(lg.log_dir) for lg in loggers if isinstance(lg, TensorBoardLogger)), None)


def logger_hints(loggers: list[Logger]) -> list[str]:
    """One line per logger saying where its record of the run is and how to look at it."""
    hints = []
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            hints.append(f"tensorboard --logdir {Path(logger.log_dir).parent}")
        elif isinstance(logger, CSVLogger):
            hints.append(f"csv: {Path(logger.log_dir) / 'metrics.csv'}")
        elif isinstance(logger, MLFlowLogger):
            hints.append(f"mlflow ui --backend-store-uri {logger.experiment.tracking_uri}  (run {logger.run_id})")
        elif isinstance(logger, WandbLogger):
            run = logger.experiment  # an offline run has no URL: its files wait for `wandb sync`
            hints.append(f"wandb: {run.url}" if run.url else f"wandb sync {Path(run.dir).parent}")
    return hints


def checkpoint_datamodule(data_cfg: DictConfig, model: L.LightningModule, ckpt_path: str) -> L.LightningDataModule:
    """`data_cfg` with the checkpoint's own preprocessing and validation split (older checkpoints lack
    the split: `data_cfg`'s is used), so `val` means the reviews the run validated on; set up, and
    refused when its class count is not the checkpoint's."""
    prep = preprocessing_of(model, ckpt_path)
    keys = ("tokenizer_json", "max_len", "padding", "truncation", "val_fraction", "split_seed")
    datamodule = instantiate(data_cfg, **{k: prep[k] for k in keys if k in prep})
    datamodule.prepare_data()
    datamodule.setup()
    if datamodule.num_classes != model.hparams.num_classes:
        raise SeqsentError(
            f"{ckpt_path} classifies {model.hparams.num_classes} classes but the data {datamodule.path} has "
            f"{datamodule.num_classes}: give the data it was trained on (data=<name> or data.path=...)"
        )
    return datamodule


def recorded_data(data_cfg: DictConfig, recorded: Any, overrides: Sequence[str]) -> DictConfig:
    """The data to test a checkpoint on: the data settings the checkpoint recorded (`seqsent_data`) with
    the command's `data.<key>=` overrides on top; `data_cfg` (the command's) when the command picks a
    dataset (`data=<name>`) or the checkpoint recorded none."""
    keys = [o.split("=", 1)[0].lstrip("+~") for o in overrides]
    if "data" in keys or not isinstance(recorded, dict) or "_target_" not in recorded:
        return data_cfg
    chosen = OmegaConf.create(recorded)
    for key in keys:
        if key.startswith("data."):
            OmegaConf.update(chosen, key.removeprefix("data."), OmegaConf.select(data_cfg, key.removeprefix("data.")))
    return chosen
