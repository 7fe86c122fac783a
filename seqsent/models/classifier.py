"""`SequenceClassifier`: a `TextClassifierNet` with its loss, metrics and optimization, as a LightningModule."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn
from torchmetrics import MaxMetric, MeanMetric, Metric
from torchmetrics.classification import (
    BinaryAccuracy,
    BinaryAUROC,
    BinaryF1Score,
    MulticlassAccuracy,
    MulticlassF1Score,
)

from seqsent.errors import SeqsentError, SettingError, check_types
from seqsent.models.adversarial import input_norm, make_adversary
from seqsent.models.network import DEFAULT_ENCODER, TextClassifierNet
from seqsent.models.training import OPTIMIZERS, PREPROCESSING_KEY, SCHEDULERS, TrainedModule
from seqsent.reliability import DATA_KEY

BEST_KEY = "seqsent_val_acc_best"  # MaxMetric state is not in state_dict; resume restores it from here
FORMAT_KEY, FORMAT = "seqsent_format", 2  # 2: the network in `net`, the encoder a spec (issue 24)


def check_format(checkpoint: Mapping[str, Any], path: object) -> None:
    """A one-line `SeqsentError` for a checkpoint of another layout than this seqsent writes."""
    found = checkpoint.get(FORMAT_KEY)
    if found == FORMAT:
        return
    if found is None:
        raise SeqsentError(
            f"{path} was written by seqsent 0.1 (before the encoder registry): retrain it, or load it with seqsent 0.1"
        )
    raise SeqsentError(f"{path} has checkpoint format {found!r}, not {FORMAT}: load it with the seqsent that wrote it")


def plain(spec: Mapping[str, Any] | None) -> dict[str, Any]:
    """An encoder spec as a plain dict (Hydra hands a `DictConfig`), so checkpoints load with `weights_only=True`."""
    if spec is None:
        return dict(DEFAULT_ENCODER)
    if isinstance(spec, DictConfig):
        return OmegaConf.to_container(spec, resolve=True)  # type: ignore[return-value]
    if not isinstance(spec, Mapping):
        raise SettingError(f"model.encoder={spec!r}: give a mapping, e.g. model/encoder=lstm")
    return {k: plain(v) if isinstance(v, Mapping) else v for k, v in spec.items()}


class SequenceClassifier(TrainedModule):
    """Text classifier over padded token batches `{"tokens", "lengths", "labels"}`: the network
    (`self.net`, a `TextClassifierNet` built from the network's arguments) with its loss, metrics,
    optimizer and checkpoint extras.

    Two classes: one logit, BCE (labels 0/1 or soft probabilities), accuracy, F1 and AUROC. More:
    cross-entropy on labels 0..C-1, accuracy and macro-F1. Every argument is a plain value (the
    encoder spec a plain dict), so `load_from_checkpoint` needs no Hydra and checkpoints load with
    `weights_only=True`. Checkpoints also carry the text preprocessing (vocabulary JSON, max_len,
    padding sides, label names) under `seqsent_preprocessing` when trained with seqsent's data
    modules, so a checkpoint alone classifies raw text (see `seqsent.predict`).

    Fine-tuning (`seqsent.finetune`): `lr_decay` > 1 gives each layer group (`layer_groups`) its own learning rate,
    `lr / lr_decay ** depth` (ULMFiT's discriminative rates: the head `lr`, each encoder layer below it 1/lr_decay
    of the one above, the embedding last); `scheduler="slanted"` is ULMFiT's slanted triangular schedule (rise over
    `warmup_fraction`, 0.1 when 0, peak/floor ratio `slanted_ratio`), each group's rate scaled alike by every
    schedule. `pretrained` only records the language model the weights were copied from: loading never reads it.

    Word vectors and adversarial training: `pretrained_embeddings` only records the vectors file `seqsent.train` copied
    into the embedding when fitting started (`seqsent.models.word_vectors`; loading never reads it);
    `freeze_embeddings` keeps the word embedding as it is (no gradient). `adversarial` "at" or "vat" adds Miyato et
    al.'s loss on the embedded input, perturbed by `adversarial_epsilon` per example (`seqsent.models.adversarial`).
    """

    def __init__(
        self,
        vocab_size: int = 10_000,
        num_classes: int = 2,
        embed_dim: int = 128,
        encoder: Mapping[str, Any] | None = None,
        dropout: float = 0.0,
        embed_dropout: float = 0.0,
        word_dropout: float = 0.0,
        bigram_buckets: int = 0,
        bigram_dim: int = 64,
        trigram_buckets: int = 0,
        unmasked_len: int = 0,
        init: str = "torch",
        optimizer: str = "adam",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        scheduler: str = "none",
        warmup_fraction: float = 0.0,
        pad_id: int = 0,
        lr_decay: float = 1.0,
        slanted_ratio: float = 32.0,
        pretrained: str | None = None,
        pretrained_embeddings: str | None = None,
        freeze_embeddings: bool = False,
        adversarial: str = "none",
        adversarial_epsilon: float = 0.5,
        vat_xi: float = 0.1,
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
        if lr_decay < 1 or slanted_ratio < 1:
            raise SettingError(
                f"model.lr_decay={lr_decay}, model.slanted_ratio={slanted_ratio}: use >= 1 (lr_decay 1: one learning "
                "rate for every layer; ULMFiT: 2.6 and 32)"
            )
        encoder = plain(encoder)  # saved as this plain dict (save_hyperparameters reads the arguments' locals)
        self.save_hyperparameters()
        self.net = TextClassifierNet(
            vocab_size, num_classes, embed_dim, encoder, dropout, embed_dropout, word_dropout,
            bigram_buckets, bigram_dim, trigram_buckets, unmasked_len, init, pad_id,
        )  # fmt: skip
        self.net.embedding.weight.requires_grad_(not freeze_embeddings)
        self.adversary = make_adversary(adversarial, adversarial_epsilon, vat_xi)
        self.binary = num_classes == 2
        self.loss_fn = nn.BCEWithLogitsLoss() if self.binary else nn.CrossEntropyLoss()
        self.data_settings: dict[str, Any] | None = None  # a loaded checkpoint's record of its run's data
        # training metrics skip their per-step input checks (each waits for the GPU): the labels are
        # checked when the data loads, and a non-finite loss stops training (`check_finite`)
        self.train_acc, self.val_acc = self._accuracy(validate_args=False), self._accuracy()
        self.train_loss = MeanMetric(nan_strategy="disable")
        self.val_loss, self.test_loss = MeanMetric(), MeanMetric()
        self.val_acc_best = MaxMetric()
        self._resumed_best: float | None = None
        self.test_acc = self._accuracy()
        self.test_f1 = BinaryF1Score() if self.binary else MulticlassF1Score(num_classes, average="macro")
        self.test_auroc = BinaryAUROC() if self.binary else None

    def _accuracy(self, **kwargs: Any) -> Metric:
        """Binary accuracy of P(class 1), or the share of argmax predictions that are right."""
        if self.binary:
            return BinaryAccuracy(**kwargs)
        return MulticlassAccuracy(self.hparams.num_classes, average="micro", **kwargs)

    # -- model --------------------------------------------------------------------------------
    def forward(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        """Logits for padded token ids (B, T), either padding side, and true lengths (B,): (B,) for
        two classes, else (B, num_classes)."""
        return self.net(tokens, lengths)

    def probabilities(self, logits: Tensor) -> Tensor:
        """P(class 1) (B,) for two classes, else the softmax over classes (B, C)."""
        return torch.sigmoid(logits) if self.binary else torch.softmax(logits, dim=-1)

    def _loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        return self.loss_fn(logits, labels if self.binary else labels.long())

    def _shared_step(self, batch: dict[str, Tensor], logits: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        logits = self(batch["tokens"], batch["lengths"]) if logits is None else logits
        labels = batch["labels"]
        # accuracy targets: class ids; for two classes 0/1 labels as they are, soft labels (probabilities) thresholded
        target = (labels >= 0.5).long() if self.binary else labels.long()
        return self._loss(logits, labels), self.probabilities(logits.detach()), target

    def _adversarial_step(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """`_shared_step`'s values from the embedded batch, and the loss with the adversary's added to it."""
        x, lengths = self.net.embed(batch["tokens"], batch["lengths"])
        x = x if x.requires_grad else x.detach().requires_grad_()  # a frozen embedding's output: still a gradient
        logits = self.net.classify_embedded(x, lengths)
        loss, probs, target = self._shared_step(batch, logits)
        extra = self.adversary(self.net, x, lengths, logits, loss, lambda z: self._loss(z, batch["labels"]))
        size = len(target)
        self.log("train/adv_loss", extra.detach(), on_step=False, on_epoch=True, batch_size=size)
        self.log("train/embed_norm", input_norm(x, lengths), on_step=False, on_epoch=True, batch_size=size)
        return loss, probs, target, loss + extra

    # -- stages ----------------------------------------------------------------------------------
    def on_train_start(self) -> None:
        self.val_loss.reset()
        self.val_acc.reset()
        self.val_acc_best.reset()
        if self._resumed_best is not None:  # a resumed run keeps the best of its earlier epochs
            self.val_acc_best.update(self._resumed_best)
        super().on_train_start()

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        if self.adversary is None:
            loss, probs, target = self._shared_step(batch)
            total = loss
        else:  # train/loss stays the classification loss alone
            loss, probs, target, total = self._adversarial_step(batch)
        self._note_nonfinite(0, total.detach())
        # update(), not a call: logged per epoch only, so the per-batch value a call computes is unused
        self.train_loss.update(loss.detach())
        self.train_acc.update(probs, target)
        self.log("train/loss_step", loss.detach(), on_step=True, on_epoch=False, prog_bar=True)
        self.log("train/loss", self.train_loss, on_step=False, on_epoch=True)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True, prog_bar=True)
        return total

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
        self.log("test/loss", self.test_loss, on_step=False, on_epoch=True)
        for name in ("acc", "f1", "auroc"):
            metric = getattr(self, f"test_{name}")
            if metric is not None:  # AUROC: binary only
                metric.update(probs, target)
                self.log(f"test/{name}", metric, on_step=False, on_epoch=True)

    def predict_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        """P(class 1) (B,) for two classes, else each class's probability (B, C)."""
        return self.probabilities(self(batch["tokens"], batch["lengths"]))

    def layer_groups(self) -> list[tuple[str, list[nn.Parameter]]]:
        """The parameters by layer group, top first, each with its name: `head`, the encoder's own `layer_groups()`
        top to bottom (`encoder<N>` .. `encoder1`; an encoder without that method is one group, `encoder`), then
        `embedding`: the word embedding, the n-gram tables and any parameter not in a group above."""
        encoder = self.net.encoder
        parts = encoder.layer_groups() if hasattr(encoder, "layer_groups") else [encoder]
        named = [("head", self.net.head)]
        named += [(f"encoder{i + 1}" if len(parts) > 1 else "encoder", parts[i]) for i in reversed(range(len(parts)))]
        groups, seen = [], set()
        for name, module in named:
            params = [p for p in module.parameters() if id(p) not in seen]
            seen.update(map(id, params))
            groups.append((name, params))
        groups.append(("embedding", [p for p in self.parameters() if id(p) not in seen]))
        return [(name, params) for name, params in groups if params]

    # -- checkpoints carry the text pipeline -------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._save_preprocessing(checkpoint)
        if self.val_acc_best.update_count:
            checkpoint[BEST_KEY] = float(self.val_acc_best.compute())
        checkpoint[FORMAT_KEY] = FORMAT

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        check_format(checkpoint, "the checkpoint")
        self.preprocessing = checkpoint.get(PREPROCESSING_KEY)
        self.data_settings = checkpoint.get(DATA_KEY)
        self._resumed_best = checkpoint.get(BEST_KEY)

    # -- a Hub-style folder (seqsent.pretrained; imported here, since it imports this module) --------
    def save_pretrained(self, folder: str | Path, metrics: dict[str, Any] | None = None) -> Path:
        """Write this classifier, its preprocessing and a model card into `folder` (`seqsent.pretrained`)."""
        from seqsent.pretrained import save_pretrained

        return save_pretrained(self, folder, metrics)

    @classmethod
    def from_pretrained(cls, folder: str | Path, map_location: str | torch.device = "cpu") -> SequenceClassifier:
        """The classifier `save_pretrained` wrote into `folder`, in eval mode."""
        from seqsent.pretrained import from_pretrained

        return from_pretrained(folder, map_location)
