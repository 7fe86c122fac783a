"""Learning-rate schedules as configured (`model.scheduler`, `model.warmup_fraction`) and the
vocabulary's `data.min_frequency`, through a real (tiny) Lightning fit."""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import pytest
from lightning.pytorch.callbacks import Callback

from seqsent.data import IMDBDataModule, SyntheticDataModule
from seqsent.data.synthetic import write_parquet_dir
from seqsent.data.vocab import tokenizer_from_json
from seqsent.models import SequenceClassifier


class LearningRates(Callback):
    def __init__(self) -> None:
        self.lrs: list[float] = []

    def on_train_batch_start(self, trainer: L.Trainer, *args) -> None:
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])


def fitted_lrs(tmp_path: Path, **model_kwargs) -> list[float]:
    dm = SyntheticDataModule(n_train=160, n_test=20, vocab_size=100, max_len=20, batch_size=16,
                             cache_dir=str(tmp_path))  # fmt: skip
    model = SequenceClassifier(
        vocab_size=100, embed_dim=8, encoder={"name": "lstm", "hidden_size": 8}, lr=0.01, **model_kwargs
    )
    record = LearningRates()
    trainer = L.Trainer(max_steps=8, limit_val_batches=0, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[record])  # fmt: skip
    trainer.fit(model, datamodule=dm)
    return record.lrs


def test_cosine_with_warmup_ramps_linearly_then_decays(tmp_path: Path) -> None:
    lrs = fitted_lrs(tmp_path, scheduler="cosine", warmup_fraction=0.25)  # 8 steps: 2 of warm-up
    assert len(lrs) == 8
    assert lrs[0] == pytest.approx(0.01 * 0.01) and lrs[1] == pytest.approx(0.01 * (0.01 + 0.99 / 2))
    assert lrs[2] == pytest.approx(0.01)  # the peak, then cosine over the remaining 6 steps
    for step in range(2, 8):
        assert lrs[step] == pytest.approx(0.01 * (1 + math.cos(math.pi * (step - 2) / 6)) / 2)


def test_constant_and_one_cycle_schedules(tmp_path: Path) -> None:
    assert fitted_lrs(tmp_path, scheduler="none") == pytest.approx([0.01] * 8)
    cycle = fitted_lrs(tmp_path / "c", scheduler="onecycle")
    assert max(cycle) == pytest.approx(0.01, rel=1e-3) and cycle[0] < 0.01 / 10 and cycle[-1] < cycle[len(cycle) // 2]


def test_min_frequency_drops_rare_words_from_the_vocabulary(tmp_path: Path) -> None:
    texts = ["good good good film", "bad bad bad film", "rare film good bad"] * 4 + ["once only"]
    labels = [1, 0, 1] * 4 + [0]
    write_parquet_dir(tmp_path / "imdb", {"train": (texts, labels), "test": (texts[:3], labels[:3])})
    vocabs = {}
    for freq in (1, 5):
        dm = IMDBDataModule(path=str(tmp_path / "imdb"), vocab_size=50, min_frequency=freq, val_fraction=0.1,
                            cache_dir=str(tmp_path / "cache"))  # fmt: skip
        dm.setup()
        vocabs[freq] = set(tokenizer_from_json(dm.preprocessing()["tokenizer_json"]).get_vocab())
    assert {"once", "only", "rare"} <= vocabs[1]
    assert {"good", "bad", "film"} <= vocabs[5] and not {"once", "only", "rare"} & vocabs[5]
