"""Fault injection for training subprocesses started by the tests (loaded via PYTHONPATH, not part
of the package): `KillAt` sends the run a signal (SIGKILL unless `sig` names another, e.g.
SIGTERM or SIGINT) after step `at_step`, as `kill` from outside would (at a known step, so the test
does not race the run); `Poison` turns the embedding weights into NaN before step `at_step`, the way
an overflow would."""

import os
import signal

import torch
from lightning.pytorch.callbacks import Callback


class KillAt(Callback):
    def __init__(self, at_step: int, sig: str = "SIGKILL") -> None:
        self.at_step, self.sig = at_step, signal.Signals[sig]
        if self.sig == signal.SIGINT:  # a background job (`cmd &` in a script) starts with SIGINT ignored: a
            signal.signal(signal.SIGINT, signal.default_int_handler)  # terminal's Ctrl-C reaches Python's handler

    def on_train_batch_end(self, trainer, *args, **kwargs) -> None:
        if trainer.global_step == self.at_step:
            os.kill(os.getpid(), self.sig)


class Poison(Callback):
    def __init__(self, at_step: int = 7) -> None:
        self.at_step = at_step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.at_step:
            with torch.no_grad():
                pl_module.net.embedding.weight.fill_(float("nan"))
