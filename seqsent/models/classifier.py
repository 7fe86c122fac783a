"""`SequenceClassifier`: embedding -> recurrent encoder -> one-logit head, as a LightningModule."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import Tensor, nn
from torchmetrics import MaxMetric, MeanMetric
from torchmetrics.classification import BinaryAccuracy, BinaryAUROC, BinaryF1Score

from seqsent.errors import SeqsentError, SettingError, check_types
from seqsent.models.dropout import Dropout, WordDropout
from seqsent.models.encoders import RecurrentEncoder, left_align, unmasked
from seqsent.models.ngrams import HashedNgrams

SCHEDULERS = ("none", "cosine", "onecycle")
OPTIMIZERS = ("adam", "adamw")
PREPROCESSING_KEY = "seqsent_preprocessing"
NONFINITE = ("training loss", "gradient")  # what `check_finite` watches
BEST_KEY = "seqsent_val_acc_best"  # MaxMetric state is not in state_dict; resume restores it from here


class SequenceClassifier(L.LightningModule):
    """Binary sentiment classifier over padded token batches `{"tokens", "lengths", "labels"}`.

    Every argument is a plain int/float/str/bool, so `load_from_checkpoint` needs no Hydra and
    checkpoints load with `weights_only=True`. Checkpoints also carry the text preprocessing
    (vocabulary JSON, max_len, padding sides) under `seqsent_preprocessing` when trained with
    an `IMDBDataModule`, so a checkpoint alone classifies raw text (see `seqsent.predict`).
    """

    def __init__(
        self,
        vocab_size: int = 10_000,
        cell: str = "lstm",
        embed_dim: int = 128,
        hidden_size: int = 128,
        num_layers: int = 1,
        bidirectional: bool = False,
        pooling: str = "last",
        init: str = "torch",
        dropout: float = 0.0,
        embed_dropout: float = 0.0,
        word_dropout: float = 0.0,
        bigram_buckets: int = 0,
        bigram_dim: int = 64,
        trigram_buckets: int = 0,
        unmasked_len: int = 0,
        single_bias: bool = False,
        optimizer: str = "adam",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        scheduler: str = "none",
        warmup_fraction: float = 0.0,
        pad_id: int = 0,
    ):
        check_types(SequenceClassifier.__init__, locals(), "model.")
        super().__init__()
        if lr <= 0:
            raise SettingError(f"model.lr={lr}: the learning rate must be positive, e.g. 1e-3")
        if weight_decay < 0:
            raise SettingError(f"model.weight_decay={weight_decay}: use >= 0")
        if not 0 <= warmup_fraction < 1:
            raise SettingError(f"model.warmup_fraction={warmup_fraction}: use a fraction in [0, 1), e.g. 0.1")
        if scheduler not in SCHEDULERS:
            raise SettingError(f"model.scheduler={scheduler!r}: use one of {SCHEDULERS}")
        if optimizer not in OPTIMIZERS:
            raise SettingError(f"model.optimizer={optimizer!r}: use one of {OPTIMIZERS}")
        if not all(0.0 <= p < 1.0 for p in (dropout, embed_dropout, word_dropout)):
            raise SettingError("model.dropout, model.embed_dropout and model.word_dropout must be in [0, 1)")
        if vocab_size < 3 or embed_dim < 1:
            raise SettingError(f"model.vocab_size={vocab_size}, model.embed_dim={embed_dim}: use >= 3 and >= 1")
        if trigram_buckets < 0:
            raise SettingError(f"model.trigram_buckets={trigram_buckets}: use >= 0 (0: no trigram vectors)")
        if bigram_buckets < 0 or bigram_dim < 1:
            raise SettingError(
                f"model.bigram_buckets={bigram_buckets}, model.bigram_dim={bigram_dim}: use buckets >= 0 "
                "(0: no bigram vectors) and dim >= 1"
            )
        if unmasked_len < 0:
            raise SettingError(f"model.unmasked_len={unmasked_len}: use 0 (padding never read) or a length, e.g. 200")
        self.save_hyperparameters()
        # unmasked_len: the padding is read as a token, so its vector is an ordinary trained row
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=None if unmasked_len else pad_id)
        if init.startswith("keras"):  # Keras' Embedding default: uniform(-0.05, 0.05)
            nn.init.uniform_(self.embedding.weight, -0.05, 0.05)
            if not unmasked_len:
                with torch.no_grad():
                    self.embedding.weight[pad_id].zero_()
        self.word_dropout = WordDropout(word_dropout)
        self.embed_dropout = Dropout(embed_dropout)
        input_size = embed_dim + bigram_dim * ((bigram_buckets > 0) + (trigram_buckets > 0))
        self.encoder = RecurrentEncoder(
            cell, input_size, hidden_size, num_layers, bidirectional, dropout, pooling, init, single_bias
        )
        self.head = nn.Sequential(Dropout(dropout), nn.Linear(self.encoder.output_size, 1))
        if init == "keras":  # Keras' Dense default: Glorot-uniform kernel, zero bias
            nn.init.xavier_uniform_(self.head[1].weight)
            nn.init.zeros_(self.head[1].bias)
        # made last and only when asked for, so runs without it draw every other weight as before
        self.bigrams = self._ngram_table(2, bigram_buckets)
        self.trigrams = self._ngram_table(3, trigram_buckets)
        self.loss_fn = nn.BCEWithLogitsLoss()
        self.preprocessing: dict[str, Any] | None = None
        # training metrics skip their per-step input checks (each waits for the GPU): the labels are
        # checked when the data loads, and a non-finite loss stops training (`check_finite`)
        self.train_acc, self.val_acc = BinaryAccuracy(validate_args=False), BinaryAccuracy()
        self.train_loss = MeanMetric(nan_strategy="disable")
        self.val_loss, self.test_loss = MeanMetric(), MeanMetric()
        self.val_acc_best = MaxMetric()
        self._resumed_best: float | None = None
        self._planned_steps: int | None = None
        self._nonfinite_at: Tensor | None = None  # see `_note_nonfinite`
        self.test_acc, self.test_f1, self.test_auroc = BinaryAccuracy(), BinaryF1Score(), BinaryAUROC()

    def _ngram_table(self, order: int, buckets: int) -> HashedNgrams | None:
        """A hashed n-gram table of `bigram_dim`-wide vectors (Keras' Embedding init under `init=keras*`),
        or None for 0 buckets."""
        if not buckets:
            return None
        hp = self.hparams
        table = HashedNgrams(buckets, hp.bigram_dim, hp.pad_id, order=order)
        if hp.init.startswith("keras"):
            nn.init.uniform_(table.table.weight, -0.05, 0.05)
        return table

    # -- model --------------------------------------------------------------------------------
    def forward(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        """Logits (B,) for padded token ids (B, T), either padding side, and true lengths (B,)."""
        if self.hparams.unmasked_len:  # every row full length: already left-aligned
            tokens, lengths = unmasked(tokens, lengths, self.hparams.unmasked_len, self.hparams.pad_id)
        else:
            tokens = left_align(tokens, lengths, self.hparams.pad_id)
        # embedded time-major, handed on as a batch-first view: the recurrent kernels need no copy
        steps = tokens.t()
        x = self.embedding(steps)
        phrases = [table(steps) for table in (self.bigrams, self.trigrams) if table is not None]
        if phrases:  # each step's word vector, then its bigram's and trigram's
            x = torch.cat([x, *phrases], dim=-1)
        x = self.embed_dropout(self.word_dropout(x.transpose(0, 1)))
        return self.head(self.encoder(x, lengths, padding="post")).squeeze(-1)

    def _shared_step(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        logits = self(batch["tokens"], batch["lengths"])
        loss = self.loss_fn(logits, batch["labels"])
        # accuracy targets: 0/1 labels as they are, soft labels (probabilities) thresholded at 0.5
        return loss, torch.sigmoid(logits.detach()), (batch["labels"] >= 0.5).long()

    # -- stages ----------------------------------------------------------------------------------
    def on_train_start(self) -> None:
        self.val_loss.reset()
        self.val_acc.reset()
        self.val_acc_best.reset()
        if self._resumed_best is not None:  # a resumed run keeps the best of its earlier epochs
            self.val_acc_best.update(self._resumed_best)
        self._nonfinite_at = None
        self._check_schedule_length()

    def _check_schedule_length(self) -> None:
        """A one-cycle schedule restored from a checkpoint cannot stretch to a longer run."""
        for config in self.trainer.lr_scheduler_configs:
            planned = getattr(config.scheduler, "total_steps", None)
            if self._planned_steps is not None and planned is not None and planned < self._planned_steps:
                raise SeqsentError(
                    f"the checkpoint's one-cycle schedule ends after {planned} steps but this run has "
                    f"{self._planned_steps}: resume with the original trainer.max_epochs, or train anew"
                )

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        loss, probs, target = self._shared_step(batch)
        self._note_nonfinite(0, loss.detach())
        # update(), not a call: logged per epoch only, so the per-batch value a call computes is unused
        self.train_loss.update(loss.detach())
        self.train_acc.update(probs, target)
        self.log("train/loss_step", loss.detach(), on_step=True, on_epoch=False, prog_bar=True)
        self.log("train/loss", self.train_loss, on_step=False, on_epoch=True)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True, prog_bar=True)
        return loss

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

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        loss, probs, target = self._shared_step(batch)
        self.val_loss.update(loss, weight=len(target))
        self.val_acc.update(probs, target)
        self.log("val/loss", self.val_loss, on_step=False, on_epoch=True, prog_bar=True)
        self.log("val/acc", self.val_acc, on_step=False, on_epoch=True, prog_bar=True)

    def on_validation_epoch_end(self) -> None:
        self.val_acc_best(self.val_acc.compute())
        self.log("val/acc_best", self.val_acc_best.compute(), sync_dist=True, prog_bar=True)

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        loss, probs, target = self._shared_step(batch)
        self.test_loss.update(loss, weight=len(target))
        for metric in (self.test_acc, self.test_f1, self.test_auroc):
            metric.update(probs, target)
        self.log("test/loss", self.test_loss, on_step=False, on_epoch=True)
        self.log("test/acc", self.test_acc, on_step=False, on_epoch=True)
        self.log("test/f1", self.test_f1, on_step=False, on_epoch=True)
        self.log("test/auroc", self.test_auroc, on_step=False, on_epoch=True)

    def predict_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        """Positive-class probabilities (B,)."""
        return torch.sigmoid(self(batch["tokens"], batch["lengths"]))

    # -- optimization --------------------------------------------------------------------------
    def _precision(self) -> str:
        """The attached trainer's precision (`32-true`, `bf16-mixed`, `16-mixed`, ...); `32-true` without one."""
        return str(self._trainer.precision) if self._trainer is not None else "32-true"

    def _fused_optimizer_allowed(self) -> bool:
        """Lightning's mixed-precision plugin refuses to clip gradients of a fused optimizer (it
        unscales internally), so `trainer=gpu` (bf16-mixed) with clipping gets the foreach kernel."""
        return not ("mixed" in self._precision() and self._trainer.gradient_clip_val)

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        opt_cls = torch.optim.AdamW if hp.optimizer == "adamw" else torch.optim.Adam
        # fused: one kernel for all parameters, far cheaper than the per-tensor loop (docs/speed.md)
        kernel = {"fused": True} if self._fused_optimizer_allowed() else {"foreach": True}
        optimizer = opt_cls(self.parameters(), lr=hp.lr, weight_decay=hp.weight_decay, **kernel)
        if hp.scheduler == "none":
            return optimizer
        total = int(self.trainer.estimated_stepping_batches)
        if hp.scheduler == "onecycle":
            pct = hp.warmup_fraction if hp.warmup_fraction > 0 else 0.1
            total = max(total, 4)  # OneCycleLR divides by zero when a phase is under 2 steps (short test runs)
            pct = min(max(pct, 2 / total), 0.5)
            sched = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=hp.lr, total_steps=total, pct_start=pct)
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
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.check_finite()  # raising here writes no file: the last checkpoint on disk stays the last good one
        prep = self.preprocessing
        trainer = self._trainer
        if prep is None and trainer is not None and hasattr(trainer.datamodule, "preprocessing"):
            prep = trainer.datamodule.preprocessing()
        if prep is not None:
            checkpoint[PREPROCESSING_KEY] = dict(prep)
        if self.val_acc_best.update_count:
            checkpoint[BEST_KEY] = float(self.val_acc_best.compute())

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.preprocessing = checkpoint.get(PREPROCESSING_KEY)
        self._resumed_best = checkpoint.get(BEST_KEY)
