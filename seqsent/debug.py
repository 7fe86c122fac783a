"""Helpers of the `debug=` config group (conf/debug/)."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import Callback


class SameBatches(Callback):
    """Train on the same batches in every epoch (`debug=overfit`): the training batch sampler's epoch
    stays 0. Lightning's `overfit_batches` turns shuffling off only for torch's `RandomSampler`; seqsent's
    `BucketBatchSampler` draws each epoch's order from (seed, epoch)."""

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # after Lightning's `set_epoch`, before the epoch's iterator is made
        sampler = getattr(trainer.train_dataloader, "batch_sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(0)
