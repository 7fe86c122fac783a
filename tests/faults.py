"""Fault injection for training subprocesses started by the tests (loaded via PYTHONPATH, not part
of the package): `Throttle` slows each step so a test can kill a run mid-epoch; `Poison` turns
the embedding weights into NaN before step `at_step`, the way an overflow would."""

import time

import torch
from lightning.pytorch.callbacks import Callback


class Throttle(Callback):
    def __init__(self, seconds: float = 0.05) -> None:
        self.seconds = seconds

    def on_train_batch_end(self, *args, **kwargs) -> None:
        time.sleep(self.seconds)


class Poison(Callback):
    def __init__(self, at_step: int = 7) -> None:
        self.at_step = at_step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.at_step:
            with torch.no_grad():
                pl_module.embedding.weight.fill_(float("nan"))
