"""Build Lightning objects from Hydra config groups (callbacks, loggers, trainer)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.accelerators import CPUAccelerator
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import Logger, TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_warn
from omegaconf import DictConfig, OmegaConf

from seqsent.checkpoint import preprocessing_of
from seqsent.errors import SeqsentError
from seqsent.utils import flatten

HPARAM_METRICS = {"val/acc_best": 0.0, "test/acc": 0.0, "time/train_seconds": 0.0}


def instantiate_group(group: DictConfig | None) -> list[Any]:
    """Instantiate every entry with a `_target_` in a config group (callbacks, loggers)."""
    if not group:
        return []
    return [instantiate(node) for node in group.values() if isinstance(node, DictConfig) and "_target_" in node]


def build_trainer(cfg: DictConfig, callbacks: list[Callback], loggers: list[Logger]) -> L.Trainer:
    """The Trainer from `cfg.trainer` plus callbacks and loggers (no logger: `logger=False`); a
    setting Lightning rejects (`trainer.devices=0`, a GPU where none is, an unknown strategy) is a
    one-line `SeqsentError`."""
    try:
        trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
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
    """Whether oneDNN runs bf16 natively on this CPU (where bf16-mixed speeds up the LSTM ~1.5x)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN (or without this private probe)
        return False


class LogConfigOnceTraining(Callback):
    """`log_hparams` at the first training batch, on the global-zero process: a run refused or
    failing before it trains (bad data, a resume that cannot continue) writes no HPARAMS record, so
    it cannot show up in TensorBoard's comparison with placeholder zeros, nor add one to the run it
    tried to resume."""

    def __init__(self, loggers: list[Logger], cfg: DictConfig) -> None:
        self.loggers, self.cfg, self.done = loggers, cfg, False

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        if not self.done and trainer.is_global_zero:
            log_hparams(self.loggers, self.cfg)
        self.done = True


def log_hparams(loggers: list[Logger], cfg: DictConfig) -> None:
    """Log the whole resolved config once, with the metrics the HPARAMS tab compares runs on."""
    params = flatten(OmegaConf.to_container(cfg, resolve=True))  # type: ignore[arg-type]
    params = {k: _short(v) for k, v in params.items() if not k.endswith("_target_") and not k.startswith("callbacks/")}
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.log_hyperparams(params, metrics=HPARAM_METRICS)
        else:
            logger.log_hyperparams(params)


def _short(value: Any, limit: int = 500) -> Any:
    """Long strings (a `data.tokenizer_json` vocabulary) as their length and hash, not the text."""
    if isinstance(value, str) and len(value) > limit:
        return f"<{len(value)} chars, sha256 {hashlib.sha256(value.encode()).hexdigest()[:16]}>"
    return value


def tensorboard_dir(loggers: list[Logger]) -> Path | None:
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            return Path(logger.log_dir)
    return None


def checkpoint_datamodule(data_cfg: DictConfig, model: L.LightningModule, ckpt_path: str) -> L.LightningDataModule:
    """`data_cfg` instantiated with the checkpoint's own vocabulary, max_len, padding and truncation,
    and its validation split (fraction and seed; checkpoints from before 2026-11-26 lack them, and
    `data_cfg`'s are used), so `val` means the reviews the run validated on, not training reviews."""
    prep = preprocessing_of(model, ckpt_path)
    keys = ("tokenizer_json", "max_len", "padding", "truncation", "val_fraction", "split_seed")
    return instantiate(data_cfg, **{k: prep[k] for k in keys if k in prep})
