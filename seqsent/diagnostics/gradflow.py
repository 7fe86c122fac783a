"""`GradientFlow`: a callback that watches gradients vanish (or not) over time during training.

    python -m seqsent.train callbacks=diagnostics model/encoder=rnn [callbacks.gradient_flow.every_n_steps=100]

Every `every_n_steps` training steps, on the first `batch_size` validation reviews (eval mode, no
`.grad`, no random state consumed), it logs the figure `diag/grad_flow`, the histogram
`diag/grad_norm_per_step` and the scalars `diag/grad_norm/d<k>`, `diag/grad_norm_geomean/d<k>` and
`diag/gates/<layer>/...` (docs/diagnostics.md). For an encoder without per-step states (cnn, nbow)
it warns once and logs nothing.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_warn

from seqsent.diagnostics.analysis import Batch, GradFlow, NoStepStates, encoder_label, gradient_flow, no_step_states
from seqsent.diagnostics.plots import plot_gradient_flow
from seqsent.errors import SeqsentError

DISTANCES = (0, 10, 25, 50, 100, 200, 400)  # steps before the end logged as scalars


class GradientFlow(Callback):
    """Logs gradient flow over time and gate statistics on a fixed validation batch."""

    def __init__(self, every_n_steps: int = 200, batch_size: int = 64):
        if every_n_steps < 1 or batch_size < 1:
            raise SeqsentError(
                f"GradientFlow every_n_steps={every_n_steps}, batch_size={batch_size}: use whole numbers >= 1"
            )
        self.every_n_steps, self.batch_size = every_n_steps, batch_size
        self._batch: Batch | None = None
        self._last_step = -1
        self._off = False  # the model has no per-step states (warned once)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        problem = no_step_states(pl_module)
        self._off = problem is not None
        if problem is not None:
            rank_zero_warn(f"callbacks=diagnostics logs nothing: {problem}")

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step
        skip = self._off or step == 0 or step % self.every_n_steps or step == self._last_step
        if skip or not trainer.is_global_zero:
            return
        self._last_step = step
        try:
            with torch.random.fork_rng(devices=[pl_module.device] if pl_module.device.type == "cuda" else []):
                flow = gradient_flow(pl_module, self.fixed_batch(trainer))
        except NoStepStates as err:  # states() that are not what the summary pools: found only by running it
            self._off = True
            rank_zero_warn(f"callbacks=diagnostics logs nothing: {err}")
            return
        self.log_flow(trainer, flow, step, label=f"{encoder_label(pl_module)} step {step}")

    def fixed_batch(self, trainer: L.Trainer) -> Batch:
        """The first `batch_size` validation reviews, collated once and reused at every analysis."""
        if self._batch is None:
            if trainer.datamodule is None:
                raise SeqsentError("GradientFlow reads validation reviews from the data module: fit with datamodule=")
            with torch.random.fork_rng(devices=[]):  # building loaders may draw seeds
                loader = trainer.datamodule.val_dataloader()
            dataset = loader.dataset
            self._batch = loader.collate_fn([dataset[i] for i in range(min(self.batch_size, len(dataset)))])
        return self._batch

    def log_flow(self, trainer: L.Trainer, flow: GradFlow, step: int, label: str = "model") -> None:
        """Scalars to every logger; the figure and the histogram to TensorBoard loggers."""
        norms = flow.mean_norms()
        geo = flow.geomean_norms()
        shown = [d for d in DISTANCES if d < len(norms) and flow.count[d] > 0]
        scalars = {f"diag/grad_norm/d{d}": float(norms[d]) for d in shown}
        scalars.update({f"diag/grad_norm_geomean/d{d}": float(geo[d]) for d in shown})
        scalars.update({f"diag/gates/{key}": value for key, value in flow.gate_stats().items()})
        for logger in trainer.loggers:
            logger.log_metrics(scalars, step=step)
            if isinstance(logger, TensorBoardLogger):
                writer = logger.experiment
                writer.add_figure("diag/grad_flow", plot_gradient_flow({label: flow}), global_step=step)
                writer.add_histogram("diag/grad_norm_per_step", norms[flow.count > 0], global_step=step)
