"""The language model on token streams made here: it learns, carries its state from window to window,
regularizes with AR/TAR, and its checkpoints load with `weights_only=True`."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from helpers import run_script
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader

from seqsent.errors import SeqsentError, SettingError
from seqsent.models.language_model import LanguageModel, LanguageModelNet, check_lm_format

NO_DROPOUT = {k: 0.0 for k in ("embed_dropout", "input_dropout", "hidden_dropout", "weight_dropout", "output_dropout")}
TINY = {"vocab_size": 16, "embed_dim": 12, "hidden_size": 20, "num_layers": 2}


def windows(stream: torch.Tensor, rows: int, bptt: int) -> list[dict[str, torch.Tensor]]:
    """`stream` split into `rows` streams and cut into consecutive windows: row b of window k+1 continues
    row b of window k (the last window may be shorter)."""
    per_row = (len(stream) - 1) // rows
    inputs = stream[: rows * per_row].view(rows, per_row)
    targets = stream[1 : rows * per_row + 1].view(rows, per_row)
    return [{"inputs": inputs[:, i : i + bptt], "targets": targets[:, i : i + bptt]} for i in range(0, per_row, bptt)]


def repeated(length: int = 600) -> torch.Tensor:
    pattern = torch.tensor([3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 4, 6, 8])
    return pattern.repeat(length // len(pattern) + 1)[:length]


class Streams(L.LightningDataModule):
    """Token stream windows for training and validation, and a preprocessing record as seqsent's data has."""

    def __init__(self, train: list[dict], val: list[dict]) -> None:
        super().__init__()
        self.train, self.val = train, val

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train, batch_size=None)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val, batch_size=None)

    def preprocessing(self) -> dict[str, Any]:
        return {"tokenizer_json": "{}", "punctuation": "keep", "direction": "forward"}


def fit(model: LanguageModel, data: Streams, root: Path, epochs: int, **kwargs: Any) -> L.Trainer:
    trainer = L.Trainer(
        max_epochs=epochs, accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
        default_root_dir=root, gradient_clip_val=0.5, num_sanity_val_steps=0, **kwargs,
    )  # fmt: skip
    trainer.fit(model, datamodule=data)
    return trainer


@pytest.mark.parametrize("cutoffs", [[], [8]])
def test_it_learns_a_repeated_sequence_to_a_low_perplexity(tmp_path: Path, cutoffs: list[int]) -> None:
    torch.manual_seed(0)
    stream = repeated()
    data = Streams(windows(stream, 4, 10), windows(stream[:200], 2, 10))
    model = LanguageModel(**TINY, **NO_DROPOUT, adaptive_cutoffs=cutoffs, lr=1e-2, scheduler="none", tar_beta=0.0)
    trainer = fit(model, data, tmp_path, epochs=12, enable_checkpointing=False)
    metrics = trainer.callback_metrics
    assert metrics["val/ppl"] < 1.5 and metrics["train/ppl"] < 2.0, dict(metrics)
    assert math.isclose(float(metrics["val/ppl"]), math.exp(float(metrics["val/loss"])), rel_tol=1e-4)


def test_the_state_carries_across_windows_and_restarts_each_epoch() -> None:
    torch.manual_seed(0)
    model = LanguageModel(**TINY, **NO_DROPOUT, ar_alpha=0.0, tar_beta=0.0).eval()
    stream = torch.randint(3, 16, (81,))
    whole = windows(stream, 2, 40)[0]
    first, second = windows(stream, 2, 20)[:2]
    with torch.no_grad():
        expected = model.net(whole["inputs"], whole["targets"])[0]
        model.validation_step(first, 0)
        carried = model._window(second, model._val_state)[0]
        fresh = model._window(second, None)[0]
    torch.testing.assert_close((model._window(first, None)[0] + carried) / 2, expected)
    assert not torch.allclose(fresh, carried)
    model.train()
    model.training_step(first, 0)
    assert all(not h.requires_grad and not c.requires_grad for h, c in model._train_state)  # detached
    carried_loss = model.training_step(second, 1)
    assert torch.allclose(carried_loss, carried)  # batch 1 continues batch 0's state
    assert torch.allclose(model.training_step(second, 0), fresh)  # an epoch's first batch starts afresh


def test_a_window_with_fewer_streams_continues_their_rows() -> None:
    torch.manual_seed(0)
    model = LanguageModel(**TINY, **NO_DROPOUT, ar_alpha=0.0, tar_beta=0.0).eval()
    first, second = windows(torch.randint(3, 16, (121,)), 3, 20)[:2]
    narrow = {k: v[:2] for k, v in second.items()}
    with torch.no_grad():
        _, _, _, state = model._window(first, None)
        expected = model.net(narrow["inputs"], narrow["targets"], [(h[:, :2], c[:, :2]) for h, c in state])[0]
        model.validation_step(first, 0)
        model.validation_step(narrow, 1)
    weighted = (model._window(first, None)[0] * 60 + expected * 40) / 100  # the mean over their tokens
    torch.testing.assert_close(model.val_loss.compute(), weighted)


def test_ar_and_tar_add_their_penalties_to_the_training_loss() -> None:
    batch = windows(torch.randint(3, 16, (81,)), 2, 40)[0]
    losses = {}
    for ar, tar in ((0.0, 0.0), (2.0, 0.0), (0.0, 1.0)):
        torch.manual_seed(0)
        model = LanguageModel(**TINY, **NO_DROPOUT, ar_alpha=ar, tar_beta=tar).train()
        losses[ar, tar] = model.training_step(batch, 0)
        raw, dropped, _ = model.net.features(batch["inputs"])
    assert losses[2.0, 0.0] > losses[0.0, 0.0] and losses[0.0, 1.0] > losses[0.0, 0.0]
    torch.testing.assert_close(losses[0.0, 1.0] - losses[0.0, 0.0], (raw[:, 1:] - raw[:, :-1]).pow(2).mean())
    torch.testing.assert_close(losses[2.0, 0.0] - losses[0.0, 0.0], 2.0 * dropped.pow(2).mean(), rtol=1e-4, atol=1e-6)


def test_output_layers_are_tied_to_the_embedding() -> None:
    full = LanguageModelNet(**TINY)
    assert full.decoder.weight is full.embedding.weight
    adaptive = LanguageModelNet(**{**TINY, "embed_dim": 16}, adaptive_cutoffs=[6, 10])
    assert adaptive.decoder.head.tied is adaptive.embedding.weight and adaptive.decoder.head.shortlist == 6
    untied = LanguageModelNet(**TINY, adaptive_cutoffs=[6], tie_weights=False)
    assert isinstance(untied.decoder.head, nn.Linear)
    x, targets = torch.randn(2, 5, 16), torch.randint(0, 16, (2, 5))
    expected = -adaptive.decoder.log_prob(x.reshape(-1, 16)).gather(1, targets.reshape(-1, 1)).mean()
    torch.testing.assert_close(adaptive.nll(x, targets), expected)
    adaptive.nll(x, targets).backward()
    assert adaptive.embedding.weight.grad[:6].abs().sum() > 0  # the head's word rows train the embedding


def test_embedding_dropout_drops_whole_words() -> None:
    torch.manual_seed(0)
    net = LanguageModelNet(**TINY, embed_dropout=0.5, input_dropout=0.0).train()
    inputs = torch.tensor([[3, 4, 3, 5, 3, 4, 5, 3] * 4])
    x = net.embed(inputs)[0]
    zero = x.abs().sum(-1) == 0
    for token in (3, 4, 5):
        at = inputs[0] == token
        assert zero[at].all() or not zero[at].any()  # every occurrence alike
    kept = ~zero
    torch.testing.assert_close(x[kept], net.embedding(inputs[0])[kept] * 2)


def test_a_checkpoint_carries_the_vocabulary_and_loads_weights_only(tmp_path: Path) -> None:
    torch.manual_seed(0)
    stream = torch.randint(3, 16, (401,))
    data = Streams(windows(stream, 4, 10), windows(stream[:100], 2, 10))
    model = LanguageModel(**{**TINY, "embed_dim": 16}, adaptive_cutoffs=[6, 10], direction="backward")
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ck", monitor="val/ppl", mode="min", save_last=True)
    fit(model, data, tmp_path, epochs=1, callbacks=[checkpoint], limit_train_batches=5)
    ckpt = torch.load(checkpoint.last_model_path, map_location="cpu", weights_only=True)
    assert ckpt["seqsent_lm_format"] == 1 and ckpt["seqsent_preprocessing"]["direction"] == "forward"
    hp = ckpt["hyper_parameters"]
    assert hp["direction"] == "backward" and hp["adaptive_cutoffs"] == [6, 10] and type(hp["adaptive_cutoffs"]) is list
    assert {"net.embedding.weight", "net.encoder.layers.0.weight_hh_l0", "net.decoder.head.clusters"} <= set(
        ckpt["state_dict"]
    )
    assert [tuple(t.shape) for t in ckpt["seqsent_lm_state"][0]] == [(1, 4, 20), (1, 4, 20)]
    loaded = LanguageModel.load_from_checkpoint(checkpoint.last_model_path, weights_only=True).eval()
    model.eval()
    batch = data.val[0]
    torch.testing.assert_close(loaded.net(batch["inputs"], batch["targets"])[0], model.net(**batch)[0])
    assert loaded.preprocessing["tokenizer_json"] == "{}"
    assert loaded.net.decoder.head.tied is loaded.net.embedding.weight  # still tied after loading


def test_a_classifier_checkpoint_is_not_a_language_model() -> None:
    with pytest.raises(SeqsentError, match="x.ckpt is not a language model checkpoint: pass one written by"):
        check_lm_format({"seqsent_format": 2}, "x.ckpt")


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"adaptive_cutoffs": [10, 6]}, r"lm.adaptive_cutoffs=\[10, 6\]: give increasing whole numbers"),
        ({"adaptive_cutoffs": [6, 16]}, r"lm.adaptive_cutoffs=\[6, 16\]: give increasing"),
        ({"adaptive_cutoffs": [4, 6, 8]}, r"with lm.embed_dim=12: the last cluster's projection would have no units"),
        ({"weight_dropout": 1.0}, r"lm.weight_dropout=1.0: use a probability in \[0, 1\)"),
        ({"direction": "both"}, r"lm.direction='both': use one of \('forward', 'backward'\)"),
        ({"lr": 0.0}, "lm.lr=0.0: the learning rate must be positive"),
        ({"scheduler": "step"}, "lm.scheduler='step': use one of"),
        ({"hidden_size": "big"}, "lm.hidden_size='big': use a whole number"),
        ({"ar_alpha": -1.0}, "lm.ar_alpha=-1.0, lm.tar_beta=1.0: use >= 0"),
    ],
)
def test_bad_settings_are_one_line_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(SettingError, match=message) as info:
        LanguageModel(**{**TINY, **kwargs})
    assert "\n" not in str(info.value)


def test_the_throughput_benchmark_times_both_loops_on_the_same_model() -> None:
    script = Path(__file__).parents[1] / "benchmarks" / "lm_throughput.py"
    args = ["--vocab-size", "300", "--cutoffs", "50", "--embed-dim", "16", "--hidden-size", "16", "--batch-size", "4"]
    done = run_script(script, *args, "--bptt", "8", "--steps", "3", "--warmup", "1", "--repeats", "1")
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["tokens_per_second"]["plain"] > 0 and result["tokens_per_second"]["lightning"] > 0
    assert result["model"]["adaptive_cutoffs"] == [50] and len(result["runs"]["plain"]) == 1
