"""Fault tolerance: atomic checkpoint files, a `last.ckpt` that says where a run stands, and exact
mid-epoch resume.

- `AtomicCheckpointIO` writes every checkpoint to a temporary file in the same directory, fsyncs it
  and renames it over the target, so a kill at any moment leaves the previous file intact.
- `LastCheckpoint` refreshes `last.ckpt` every N training steps, at the end of training (marked
  finished, so resuming it is refused) and at the step where a SIGTERM arrived; at the start of a
  run it deletes the temporary files of checkpoint writes that a kill cut short.
- `ExactResume` stores the RNG states (torch, CUDA, numpy, random) in each checkpoint and, after a
  resume, restores them right before the next training batch and makes the training sampler skip
  the batches of the interrupted epoch that were already trained on. With the seeded samplers of
  `seqsent.data.batching`, a resumed run then sees the same batches and dropout masks as an
  uninterrupted one. It also stores the run's data settings, which a resume must repeat.
"""

from __future__ import annotations

import os
import random
import re
import secrets
import tempfile
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from hydra.experimental.callback import Callback as HydraCallback
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from omegaconf import DictConfig

from seqsent.errors import report_errors
from seqsent.utils import output_error

FINISHED_KEY = "seqsent_finished"  # in checkpoints saved at the end: the limits it ended under, early stopping
DATA_KEY = "seqsent_data"  # the run's data settings (`ExactResume`)
TEMPORARY = re.compile(r"\..+\.tmp-(\d+)-[0-9a-f]{6}")  # `AtomicCheckpointIO`'s file being written


class AtomicCheckpointIO(TorchCheckpointIO):
    """`torch.save` to `.<name>.tmp-<pid>-<hex>`, fsync, then `os.replace` onto the checkpoint path.
    A write that fails (full disk, no permission) is a one-line error; the previous file stays."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None) -> None:
        target = Path(path)
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}-{secrets.token_hex(3)}")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as fh:
                torch.save(checkpoint, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except OSError as err:
            raise output_error(target, err, "hydra.run.dir") from err
        finally:
            tmp.unlink(missing_ok=True)


def remove_stale_temporaries(directory: Path) -> list[Path]:
    """Delete the temporary files in `directory` of checkpoint writes whose process is gone (a
    SIGKILL or a crash mid-write leaves one as large as the checkpoint); returns them."""
    stale = []
    for path in directory.glob(".*.tmp-*"):
        match = TEMPORARY.fullmatch(path.name)
        if match and path.is_file() and not _alive(int(match.group(1))):
            path.unlink(missing_ok=True)
            stale.append(path)
    return stale


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # PermissionError: another user's process, alive
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


class LastCheckpoint(ModelCheckpoint):
    """`ModelCheckpoint` (use it with `save_last=True`) whose `last.ckpt` is where the run stands.

    - Lightning refreshes `last.ckpt` only when it saves another checkpoint, so a run whose last
      epoch brought no new best ended with an older one. This one also saves it when training
      ends, with `FINISHED_KEY` (the epoch and step limits it ended under).
    - At the training step where a SIGTERM arrived (Lightning then stops the run) it saves
      `last.ckpt`, so the run resumes from there exactly.
    - Lightning resumes a checkpoint saved at the end of a training batch that a validation follows
      as if that validation had run. Such a save (`every_n_train_steps`, SIGTERM) waits for the
      validation's end instead; a SIGTERM stops the validation, and the newest `last.ckpt` stays.
    - At the start of a fit it deletes stale temporary files (`remove_stale_temporaries`).
    """

    def __init__(self, every_n_train_steps: int | None = None, **kwargs: Any) -> None:
        super().__init__(every_n_train_steps=every_n_train_steps, **kwargs)
        self.every = every_n_train_steps or 0
        self._finished: dict[str, Any] | None = None
        self._after_validation = False

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if trainer.is_global_zero and self.dirpath and Path(self.dirpath).is_dir():
            remove_stale_temporaries(Path(self.dirpath))

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        sigterm = trainer.strategy.reduce_boolean_decision(trainer.received_sigterm, all=False)
        if validation_follows(trainer, batch_idx):
            self._after_validation |= sigterm or (self.every > 0 and trainer.global_step % self.every == 0)
            return
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if sigterm:
            self._save_last(trainer)  # Lightning stops the run right after this hook

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if self._after_validation and not trainer.sanity_checking:
            self._after_validation = False
            self._save_last(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # instead of Lightning's, which saves `last.ckpt` only when nothing was saved in this fit
        self._finished = {"max_epochs": trainer.max_epochs, "max_steps": trainer.max_steps}
        stopper = next((c for c in trainer.early_stopping_callbacks if c.stopped_epoch > 0), None)
        if stopper is not None:  # ended by early stopping: resuming would stop again at once
            self._finished["stopped_early"] = {"monitor": stopper.monitor, "patience": stopper.patience}
        self._save_last(trainer)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(trainer, pl_module, checkpoint)
        if self._finished is not None:
            checkpoint[FINISHED_KEY] = dict(self._finished)

    def _save_last(self, trainer: L.Trainer) -> None:
        if trainer.fast_dev_run or not self.save_last:
            return
        self.last_model_path = self.format_checkpoint_name({}, self.CHECKPOINT_NAME_LAST)
        trainer.save_checkpoint(self.last_model_path, self.save_weights_only)


def validation_follows(trainer: L.Trainer, batch_idx: int) -> bool:
    """Whether Lightning validates right after this training batch: the last of an epoch that
    validates, or one at `val_check_interval` (batch-based validation only)."""
    every_epochs = trainer.check_val_every_n_epoch
    if not trainer.enable_validation or (every_epochs and (trainer.current_epoch + 1) % every_epochs):
        return False
    every_batches = trainer.val_check_batch
    if batch_idx + 1 == trainer.num_training_batches:
        return True
    return isinstance(every_batches, int) and every_batches > 0 and (batch_idx + 1) % every_batches == 0


class CheckOutputDir(HydraCallback):
    """Hydra callback: a run (or sweep) directory that cannot be made or written to ends the command
    with one line naming it, before Hydra makes it (which would fail with a traceback)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        check_output_dir(config.hydra.run.dir, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        check_output_dir(config.hydra.sweep.dir, "hydra.sweep.dir")


@report_errors
def check_output_dir(directory: str, setting: str) -> None:
    """Make `directory` and a file in it, or stop with `output_error`."""
    path = Path(str(directory)).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        raise output_error(path, err, setting) from err


def rng_state() -> dict[str, Any]:
    """All RNG states as tensors and plain Python values (loadable with `weights_only=True`)."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *map(_plain, np_state[2:])],
        "python": _to_lists(random.getstate()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))
    random.setstate(_to_tuples(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _to_lists(value: Any) -> Any:
    return [_to_lists(v) for v in value] if isinstance(value, tuple) else value


def _to_tuples(value: Any) -> Any:
    return tuple(_to_tuples(v) for v in value) if isinstance(value, list) else value


class ExactResume(Callback):
    """Make a run resumed from a mid-epoch checkpoint continue exactly where it stopped. `data`: the
    run's data settings, stored in every checkpoint (`DATA_KEY`) for the resume to compare."""

    def __init__(self, data: dict[str, Any] | None = None) -> None:
        self.data = dict(data) if data else None
        self._pending_rng: dict[str, Any] | None = None  # set by a resume until the first batch

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        if self.data is not None:
            checkpoint[DATA_KEY] = self.data

    def state_dict(self) -> dict[str, Any]:
        return {"rng": rng_state()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending_rng = state_dict.get("rng")

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Lightning skips `on_train_epoch_start` when it restarts mid-epoch; this hook runs after the
        # loader's iterator is created and before its first batch is drawn, so the skip still applies.
        if self._pending_rng is None:
            return
        per_epoch = trainer.num_training_batches
        if per_epoch == float("inf") or trainer.accumulate_grad_batches != 1:
            return
        done = trainer.global_step - trainer.current_epoch * int(per_epoch)
        sampler = getattr(trainer.train_dataloader, "batch_sampler", None)
        if 0 < done < per_epoch and hasattr(sampler, "skip_batches"):
            sampler.skip_batches(done)  # a mid-epoch checkpoint: continue after its last batch

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self._pending_rng is not None:
            set_rng_state(self._pending_rng)
            self._pending_rng = None
