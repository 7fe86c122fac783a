"""`TrainedModule`: what seqsent's LightningModules share (`SequenceClassifier`, `LanguageModel`): the optimizer and
its schedule with a rate per layer group, the non-finite guard, and the text pipeline in every checkpoint."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from seqsent.errors import SeqsentError

SCHEDULERS = ("none", "cosine", "onecycle", "slanted")
OPTIMIZERS = ("adam", "adamw")
PREPROCESSING_KEY = "seqsent_preprocessing"
NONFINITE = ("training loss", "gradient")  # what `check_finite` watches


class SlantedTriangular:
    """ULMFiT's slanted triangular learning rate (Howard & Ruder 2018, eq. 3) as a `LambdaLR` factor: from 1/ratio up
    to 1 over the first `cut_frac` of `total_steps`, then linearly back down to 1/ratio. An object, not a function, so
    `LambdaLR` keeps its settings in checkpoints and a resumed run follows the schedule it started."""

    def __init__(self, total_steps: int, cut_frac: float, ratio: float):
        self.total_steps, self.ratio = total_steps, ratio
        self.cut = max(1, int(total_steps * cut_frac))

    def __call__(self, step: int) -> float:
        rise = step / self.cut if step < self.cut else 1 - (step - self.cut) / max(self.total_steps - self.cut, 1)
        return (1 + max(rise, 0.0) * (self.ratio - 1)) / self.ratio


class TrainedModule(L.LightningModule):
    """A LightningModule with `self.net`, `layer_groups()` and the hyperparameters `optimizer` (adam|adamw), `lr`,
    `weight_decay`, `scheduler` (none|cosine|onecycle|slanted, stepped every batch), `warmup_fraction`, `lr_decay`
    and `slanted_ratio`; `preprocessing` (the text pipeline) goes into its checkpoints."""

    def __init__(self) -> None:
        super().__init__()
        self.preprocessing: dict[str, Any] | None = None
        self._planned_steps: int | None = None
        self._nonfinite_at: Tensor | None = None  # see `_note_nonfinite`

    def layer_groups(self) -> list[tuple[str, list[nn.Parameter]]]:
        """The parameters by layer group, top first, each with its name (for `lr_decay`)."""
        raise NotImplementedError

    def on_train_start(self) -> None:
        self._nonfinite_at = None
        self._check_schedule_length()

    def _check_schedule_length(self) -> None:
        """A one-cycle or slanted schedule restored from a checkpoint cannot stretch to a longer run."""
        for config in self.trainer.lr_scheduler_configs:
            factors = getattr(config.scheduler, "lr_lambdas", [])
            planned = getattr(config.scheduler, "total_steps", None) or next(
                (f.total_steps for f in factors if isinstance(f, SlantedTriangular)), None
            )
            if self._planned_steps is not None and planned is not None and planned < self._planned_steps:
                schedule = "one-cycle" if self.hparams.scheduler == "onecycle" else "slanted triangular"
                raise SeqsentError(
                    f"the checkpoint's {schedule} schedule ends after {planned} steps but this run has "
                    f"{self._planned_steps}: resume with the original trainer.max_epochs, or train anew"
                )

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        if self._precision() == "16-mixed":
            return  # fp16 loss scaling overflows on purpose at first; its scaler skips those steps
        grads = [p.grad for p in self.parameters() if p.grad is not None]
        if grads:
            self._note_nonfinite(1, torch.nn.utils.get_total_norm(grads))

    # -- the non-finite guard: a flag on the device, read on the host now and then ------------------
    def _note_nonfinite(self, kind: int, value: Tensor) -> None:
        """Record the first step at which `value` (kind 0: the loss, 1: the gradient norm) was not
        finite, on `value`'s device: the step never waits for the GPU to test it."""
        if self._nonfinite_at is None:
            self._nonfinite_at = torch.full((len(NONFINITE),), -1, dtype=torch.long, device=value.device)
        at = self._nonfinite_at[kind]
        at.copy_(torch.where(torch.isfinite(value) | (at >= 0), at, self.global_step))

    def check_finite(self) -> None:
        """Raise `FloatingPointError` naming the step if a loss or gradient was not finite: one wait
        for the device, made every `trainer.log_every_n_steps` steps (when Lightning waits to log
        anyway), before every checkpoint is written, and when training ends."""
        if self._nonfinite_at is None:
            return
        for name, step in zip(NONFINITE, self._nonfinite_at.tolist()):
            if step >= 0:
                raise FloatingPointError(f"non-finite {name} at step {step}")

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.global_step % self.trainer.log_every_n_steps == 0:
            self.check_finite()

    def on_train_end(self) -> None:
        self.check_finite()

    # -- optimization --------------------------------------------------------------------------
    def _precision(self) -> str:
        """The attached trainer's precision (`32-true`, `bf16-mixed`, `16-mixed`, ...); `32-true` without one."""
        return str(self._trainer.precision) if self._trainer is not None else "32-true"

    def _fused_optimizer_allowed(self) -> bool:
        """Lightning's mixed-precision plugin refuses to clip gradients of a fused optimizer (it
        unscales internally), so `trainer=gpu` (bf16-mixed) with clipping gets the foreach kernel."""
        return not ("mixed" in self._precision() and self._trainer.gradient_clip_val)

    def _param_groups(self) -> list[dict[str, Any]]:
        """One group of every parameter at `lr`, or with `lr_decay` > 1 one per layer group at `lr / lr_decay ** depth`
        (named for LearningRateMonitor: `lr-AdamW/head`, ...)."""
        hp = self.hparams
        if hp.lr_decay == 1:
            return [{"params": list(self.parameters()), "lr": hp.lr}]
        groups = self.layer_groups()
        return [{"params": p, "lr": hp.lr / hp.lr_decay**depth, "name": n} for depth, (n, p) in enumerate(groups)]

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        opt_cls = torch.optim.AdamW if hp.optimizer == "adamw" else torch.optim.Adam
        # fused: one kernel for all parameters, far cheaper than the per-tensor loop (docs/speed.md)
        kernel = {"fused": True} if self._fused_optimizer_allowed() else {"foreach": True}
        optimizer = opt_cls(self._param_groups(), lr=hp.lr, weight_decay=hp.weight_decay, **kernel)
        if hp.scheduler == "none":
            return optimizer
        total = int(self.trainer.estimated_stepping_batches)
        if hp.scheduler == "onecycle":
            pct = hp.warmup_fraction if hp.warmup_fraction > 0 else 0.1
            total = max(total, 4)  # OneCycleLR divides by zero when a phase is under 2 steps (short test runs)
            pct = min(max(pct, 2 / total), 0.5)
            peaks = [group["lr"] for group in optimizer.param_groups]
            sched = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=peaks, total_steps=total, pct_start=pct)
            self._planned_steps = total
        elif hp.scheduler == "slanted":
            cut_frac = hp.warmup_fraction if hp.warmup_fraction > 0 else 0.1
            slanted = SlantedTriangular(total, cut_frac, hp.slanted_ratio)
            sched = torch.optim.lr_scheduler.LambdaLR(optimizer, slanted)
            self._planned_steps = total
        else:
            warm = int(total * hp.warmup_fraction)
            cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total - warm, 1))
            if warm > 0:
                ramp = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=0.01, total_iters=warm)
                sched = torch.optim.lr_scheduler.SequentialLR(optimizer, [ramp, cosine], milestones=[warm])
            else:
                sched = cosine
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # -- checkpoints carry the text pipeline -------------------------------------------------
    def _save_preprocessing(self, checkpoint: dict[str, Any]) -> None:
        """Check the run is finite (raising here writes no file: the last checkpoint on disk stays the
        last good one), then put the text pipeline (this module's, else the datamodule's) into `checkpoint`."""
        self.check_finite()
        prep = self.preprocessing
        trainer = self._trainer
        if prep is None and trainer is not None and hasattr(trainer.datamodule, "preprocessing"):
            prep = trainer.datamodule.preprocessing()
        if prep is not None:
            checkpoint[PREPROCESSING_KEY] = dict(prep)
