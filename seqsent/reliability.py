"""Fault tolerance: atomic checkpoint files and exact mid-epoch resume.

- `AtomicCheckpointIO` writes every checkpoint to a temporary file in the same directory, fsyncs it
  and renames it over the target, so a kill at any moment leaves the previous file intact.
- `ExactResume` stores the RNG states (torch, CUDA, numpy, random) in each checkpoint and, after a
  resume, restores them right before the next training batch and makes the training sampler skip
  the batches of the interrupted epoch that were already trained on. With the seeded samplers of
  `seqsent.data.batching`, a resumed run then sees the same batches and dropout masks as an
  uninterrupted one.
"""

from __future__ import annotations

import os
import random
import secrets
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import Callback


class AtomicCheckpointIO(TorchCheckpointIO):
    """`torch.save` to `<name>.tmp-*`, fsync, then `os.replace` onto the checkpoint path."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None) -> None:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}-{secrets.token_hex(3)}")
        try:
            with open(tmp, "wb") as fh:
                torch.save(checkpoint, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)


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
    """Make a run resumed from a mid-epoch checkpoint continue exactly where it stopped."""

    def __init__(self) -> None:
        self._pending_rng: dict[str, Any] | None = None  # set by a resume until the first batch

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
