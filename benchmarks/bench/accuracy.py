"""Time to accuracy: seqsent's Lightning training of a recipe until a test accuracy."""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import torch

from seqsent.data import IMDBDataModule
from seqsent.errors import SeqsentError
from seqsent.models import SequenceClassifier

from .common import (
    DATA_KEYS,
    DEFAULT_RECIPE,
    ENCODER_KEYS,
    MODEL_KEYS,
    NULLABLE,
    PRECISIONS,
    autocast,
    log,
)
from .data import datasets_cache
from .throughput import to_device


def parse_recipe(items: list[str]) -> dict[str, Any]:
    """DEFAULT_RECIPE with `key=value` overrides, each value read as the default's type."""
    recipe = dict(DEFAULT_RECIPE)
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in DEFAULT_RECIPE:
            raise SeqsentError(f"--recipe {item!r}: use key=value with key one of {', '.join(sorted(DEFAULT_RECIPE))}")
        recipe[key] = _coerce(key, value)
    return recipe


def _coerce(key: str, value: str) -> Any:
    default = DEFAULT_RECIPE[key]
    if value.lower() in ("null", "none"):
        if key in NULLABLE:
            return None
        raise SeqsentError(f"--recipe {key}={value}: {key} needs a value")
    try:
        if isinstance(default, bool):
            if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(value)
            return value.lower() in ("true", "1", "yes")
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float) or default is None:
            return float(value)
    except ValueError:
        kind = "true or false" if isinstance(default, bool) else type(default or 0.0).__name__
        raise SeqsentError(f"--recipe {key}={value}: expected {kind}") from None
    return value


def check_recipe(recipe: dict[str, Any]) -> None:
    """Build the recipe's datamodule and model once (cheap), so a bad value fails before hours of benchmark."""
    if recipe["evals_per_epoch"] < 1:
        raise SeqsentError(f"--recipe evals_per_epoch={recipe['evals_per_epoch']}: use >= 1")
    try:
        IMDBDataModule(path=".", **{k: recipe[k] for k in DATA_KEYS})
        recipe_model(recipe)
    except ValueError as err:
        raise SeqsentError(f"--recipe: {err}") from None


def recipe_model(recipe: dict[str, Any]) -> SequenceClassifier:
    """The recipe's model: its cell's recurrent encoder (with the recipe's init and dropout) in a classifier."""
    encoder = {"name": recipe["cell"], "init": recipe["init"], "dropout": recipe["dropout"]}
    encoder.update({k: recipe[k] for k in ENCODER_KEYS})
    return SequenceClassifier(vocab_size=recipe["vocab_size"], encoder=encoder, **{k: recipe[k] for k in MODEL_KEYS})


def evaluate_accuracy(model: torch.nn.Module, loader: Any, device: torch.device, precision: str = "32") -> float:
    """Accuracy (logit > 0 means positive) over every batch of `loader`, in eval mode without gradients."""
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=device)
    total = 0
    with torch.inference_mode(), autocast(device, precision):
        for batch in loader:
            batch = to_device(batch, device)
            logits = model(batch["tokens"], batch["lengths"])
            correct += ((logits > 0) == (batch["labels"] > 0.5)).sum()
            total += len(batch["labels"])
    model.train(was_training)
    return int(correct) / total


def time_to_accuracy(
    path: Path | str,
    recipe: dict[str, Any],
    max_epochs: int,
    target: float,
    device: torch.device,
    work_dir: Path,
    precision: str = "32",
) -> dict[str, Any]:
    """Wall seconds from a cold cache until the test accuracy first reaches `target`.

    seqsent's own training path: `IMDBDataModule` (prepare_data/setup from an empty cache dir,
    `datasets`' Arrow cache pointed there too) and `SequenceClassifier.training_step` run by a
    Lightning Trainer (no logger, checkpoints, progress bar or validation); a callback measures the
    full test split `evals_per_epoch` times per epoch and stops the run at the target. The clock
    starts before the datamodule is made and stops after the evaluation that reached the target, so
    data preparation and the evaluations are included. Returns `seconds` (None if not reached
    within `max_epochs`), `best_test_acc`, `history` and the parts' times.
    """
    import lightning as L
    from lightning.pytorch.callbacks import Callback

    class TestAccuracyProbe(Callback):
        def __init__(self) -> None:
            self.history: list[dict[str, float]] = []
            self.reached: float | None = None
            self.eval_seconds = 0.0
            self.loader: Any = None

        def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            self.loader = dm.test_dataloader()

        def on_train_batch_end(
            self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
        ) -> None:
            n = int(trainer.num_training_batches)
            marks = {max(1, round(k * n / recipe["evals_per_epoch"])) for k in range(1, recipe["evals_per_epoch"] + 1)}
            if batch_idx + 1 not in marks:
                return
            eval_start = time.perf_counter()
            acc = evaluate_accuracy(pl_module, self.loader, device, precision)
            now = time.perf_counter()
            self.eval_seconds += now - eval_start
            epoch = trainer.current_epoch + (batch_idx + 1) / n
            self.history.append({"epoch": round(epoch, 3), "test_acc": round(acc, 4), "seconds": round(now - start, 2)})
            log(f"time-to-accuracy: epoch {epoch:.2f} test acc {acc:.4f} at {now - start:.0f}s")
            if acc >= target and self.reached is None:
                self.reached = now - start
                trainer.should_stop = True

    start = time.perf_counter()
    cache_dir = Path(work_dir) / "time-to-accuracy-cache"
    with datasets_cache(cache_dir / "hf"), warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        warnings.filterwarnings("ignore", ".*val_dataloader.*")
        L.seed_everything(recipe["seed"], verbose=False)
        dm = IMDBDataModule(path=str(path), cache_dir=str(cache_dir), **{k: recipe[k] for k in DATA_KEYS})
        model = recipe_model(recipe)
        probe = TestAccuracyProbe()
        trainer = L.Trainer(
            accelerator="gpu" if device.type == "cuda" else "cpu",
            devices=[device.index or 0] if device.type == "cuda" else 1,
            max_epochs=max_epochs,
            precision=PRECISIONS[precision],
            gradient_clip_val=recipe["gradient_clip"],
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            limit_val_batches=0,
            callbacks=[probe],
        )
        trainer.fit(model, datamodule=dm)
    best = max((h["test_acc"] for h in probe.history), default=None)
    result: dict[str, Any] = {
        "seconds": probe.reached,
        "target": target,
        "best_test_acc": best,
        "prep_seconds": dm.prep_seconds,
        "eval_seconds": probe.eval_seconds,
        "total_seconds": time.perf_counter() - start,
        "epochs_run": probe.history[-1]["epoch"] if probe.history else 0,
        "test_evaluations": len(probe.history),
        "stopping": "the test split is the stopping criterion (as in DAWNBench's time-to-accuracy): the run "
        "stops at the first of its test_evaluations looks that reaches the target, one seed, no validation; "
        "a time, not an unbiased accuracy estimate",
        "history": probe.history,
    }
    if probe.reached is None:
        result["reason"] = f"test accuracy {best} stayed below {target} within max_epochs={max_epochs}"
    return result
