"""Callbacks: a progress bar that stays readable in log files, an epoch timer, weight averaging, and gradual
unfreezing."""

from __future__ import annotations

import math
import sys
import time
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback, EMAWeightAveraging, ProgressBar, RichProgressBar
from lightning.pytorch.trainer.states import TrainerFn

from seqsent.errors import SeqsentError, SettingError


def progress_bar(lines_per_epoch: int = 10) -> ProgressBar:
    """Rich's live bar on a terminal; plain log lines when output goes to a file (SLURM, nohup)."""
    if sys.stdout.isatty():
        return RichProgressBar()
    return LineProgressBar(lines_per_epoch)


class LineProgressBar(ProgressBar):
    """Prints `lines_per_epoch` short lines per training epoch and one line per validation."""

    def __init__(self, lines_per_epoch: int = 10):
        super().__init__()
        self.lines_per_epoch = max(1, lines_per_epoch)
        self._enabled = True
        self._start = 0.0

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def _print(self, trainer: L.Trainer, text: str) -> None:
        if self._enabled and trainer.is_global_zero:
            print(text, flush=True)

    def _metrics(self, trainer: L.Trainer, pl_module: L.LightningModule, prefix: str) -> str:
        items = self.get_metrics(trainer, pl_module)
        return " ".join(f"{k}={v:.4f}" for k, v in items.items() if k.startswith(prefix) and isinstance(v, float))

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        total = self.total_train_batches
        step = batch_idx + 1
        every = max(1, int(total // self.lines_per_epoch)) if total != float("inf") else 100
        if step % every and step != total:
            return
        elapsed = time.perf_counter() - self._start
        eta = elapsed / step * (total - step) if total != float("inf") else float("nan")
        epochs = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else "?"
        self._print(
            trainer,
            f"epoch {trainer.current_epoch + 1}/{epochs} step {step}/{total} "
            f"{self._metrics(trainer, pl_module, 'train/loss')} {elapsed:.0f}s elapsed, eta {eta:.0f}s",
        )

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        self._print(
            trainer, f"epoch {trainer.current_epoch + 1} validation: {self._metrics(trainer, pl_module, 'val/')}"
        )

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}
        self._print(trainer, "test: " + " ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items())))


class EpochTimer(Callback):
    """Wall seconds of each training epoch (from its start, or a resume mid-way), logged as
    `time/epoch_seconds`, less each validation and the checkpoints saved after it."""

    def __init__(self) -> None:
        self.epoch_seconds: list[float] = []
        self._start = 0.0
        self._paused = 0.0  # seconds of validation in this epoch
        self._pause_start: float | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.on_train_epoch_start(trainer, pl_module)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start, self._paused, self._pause_start = time.perf_counter(), 0.0, None

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._pause_start = time.perf_counter()

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        self._unpause(time.perf_counter())

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        now = time.perf_counter()
        self._unpause(now)
        seconds = now - self._start - self._paused
        self.epoch_seconds.append(seconds)
        pl_module.log("time/epoch_seconds", seconds)

    def _unpause(self, now: float) -> None:
        if self._pause_start is not None:
            self._paused += now - self._pause_start
            self._pause_start = None

    def state_dict(self) -> dict[str, Any]:
        return {"epoch_seconds": list(self.epoch_seconds)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.epoch_seconds = list(state_dict.get("epoch_seconds", []))


class EMAWeights(EMAWeightAveraging):
    """Lightning's `EMAWeightAveraging`, whose averaged weights are also the ones tested: Lightning's
    callback loads a checkpoint's raw weights whenever one is loaded after `fit` began (so `trainer.test(
    ckpt_path="best")` would test raw weights); here only resuming a fit restores them."""

    _raw_at_end: dict[str, Any] | None = None

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Lightning's callback copies the average into the module here; a `last.ckpt` saved after this
        # would carry the average as the raw weights, and resuming it would not be exact.
        self._raw_at_end = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}
        super().on_train_end(trainer, pl_module)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(trainer, pl_module, checkpoint)
        if self._raw_at_end is not None and "current_model_state" in checkpoint:
            checkpoint["current_model_state"] = self._raw_at_end

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        if trainer.state.fn == TrainerFn.FITTING:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)


class GradualUnfreezing(Callback):
    """ULMFiT's gradual unfreezing: training starts with the top layer group (the head) alone trainable, and the next
    group below is unfrozen every `every_n_epochs` epochs (a fraction unfreezes within an epoch: 0.25, every quarter),
    until every group trains. The groups are the module's `layer_groups()`, top first (`SequenceClassifier`: head,
    encoder layers top to bottom, embedding).

    Unlike Lightning's `BaseFinetuning`, which adds each unfrozen group to the running optimizer, the optimizer holds
    every group from the start: a frozen parameter just gets no gradient, so the optimizer leaves it (and its moments
    and weight decay) alone, and each group's learning rate follows the run's schedule throughout (`model.lr_decay`,
    `model.scheduler`). How many groups train follows from the optimizer step alone, so a resumed run picks it up.
    Parameters the model holds fixed (`requires_grad=False` when training starts) stay fixed; all the others are
    trainable again once training ends."""

    def __init__(self, every_n_epochs: float = 1.0) -> None:
        if not every_n_epochs > 0:
            raise SettingError(
                f"callbacks.gradual_unfreezing.every_n_epochs={every_n_epochs}: use > 0 epochs between unfreezing "
                "steps, e.g. 1 (ULMFiT) or 0.5"
            )
        self.every_n_epochs = every_n_epochs
        self._groups: list[list[Any]] = []
        self._unfrozen = 0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not hasattr(pl_module, "layer_groups"):
            raise SeqsentError(
                f"callbacks=gradual_unfreezing: {type(pl_module).__name__} has no layer_groups(): use it with "
                "seqsent's SequenceClassifier"
            )
        self._groups = [[p for p in params if p.requires_grad] for _, params in pl_module.layer_groups()]
        self._unfrozen = len(self._groups)  # all trainable now: `_unfreeze` freezes the groups not due yet
        self._unfreeze(trainer)

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        self._unfreeze(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._set_trainable(len(self._groups))

    def trainable_groups(self, trainer: L.Trainer) -> int:
        """How many groups (from the top) train at this optimizer step."""
        steps_per_epoch = math.ceil(trainer.num_training_batches / trainer.accumulate_grad_batches)
        every = max(1, round(self.every_n_epochs * steps_per_epoch))
        return min(len(self._groups), 1 + trainer.global_step // every)

    def _unfreeze(self, trainer: L.Trainer) -> None:
        wanted = self.trainable_groups(trainer)
        if wanted != self._unfrozen:
            self._set_trainable(wanted)

    def _set_trainable(self, count: int) -> None:
        for i, params in enumerate(self._groups):
            for param in params:
                param.requires_grad_(i < count)
        self._unfrozen = count
