"""The network (`TextClassifierNet`) apart from training, and `SequenceClassifier` around it: weights drawn in
the old order, binary and multi-class heads, losses and metrics, and checkpoints that load without Hydra."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from omegaconf import OmegaConf
from torch import nn
from torch.utils.data import DataLoader

from seqsent.checkpoint import load_classifier
from seqsent.errors import SeqsentError, SettingError
from seqsent.models import ENCODERS, RecurrentEncoder, SequenceClassifier, TextClassifierNet
from seqsent.models.classifier import FORMAT, FORMAT_KEY
from seqsent.models.dropout import Dropout
from seqsent.models.ngrams import HashedNgrams

SMALL = {"vocab_size": 40, "embed_dim": 6}


@pytest.mark.parametrize("init", ["torch", "keras", "keras_per_gate"])
def test_weights_are_drawn_in_the_old_order(init: str) -> None:
    """Embedding, encoder, head, bigrams, trigrams: the order of seqsent 0.1's classifier, so seeded runs
    start from the same weights as before the network moved out of the LightningModule."""
    torch.manual_seed(0)
    net = TextClassifierNet(
        **SMALL,
        encoder={"name": "gru", "hidden_size": 5, "bidirectional": True, "init": init},
        bigram_buckets=11,
        bigram_dim=3,
        trigram_buckets=7,
        init=init,
    )
    torch.manual_seed(0)
    embedding = nn.Embedding(40, 6, padding_idx=0)
    if init != "torch":
        nn.init.uniform_(embedding.weight, -0.05, 0.05)
        embedding.weight.data[0] = 0
    encoder = RecurrentEncoder("gru", 12, 5, bidirectional=True, init=init)
    head = nn.Linear(10, 1)
    if init == "keras":
        nn.init.xavier_uniform_(head.weight)
        nn.init.zeros_(head.bias)
    tables = []
    for buckets, order in ((11, 2), (7, 3)):
        tables.append(HashedNgrams(buckets, 3, order=order))
        if init != "torch":
            nn.init.uniform_(tables[-1].table.weight, -0.05, 0.05)
    want = {
        **{f"embedding.{k}": v for k, v in embedding.state_dict().items()},
        **{f"encoder.{k}": v for k, v in encoder.state_dict().items()},
        **{f"head.1.{k}": v for k, v in head.state_dict().items()},
        "bigrams.table.weight": tables[0].table.weight,
        "trigrams.table.weight": tables[1].table.weight,
    }
    got = net.state_dict()
    assert got.keys() == want.keys()
    for name, value in want.items():
        assert torch.equal(got[name], value), name


def test_the_network_is_usable_without_lightning() -> None:
    net = TextClassifierNet(**SMALL, num_classes=4, encoder={"name": "cnn", "widths": [2, 3], "channels": 5})
    assert isinstance(net.head[0], Dropout) and net.head[1].out_features == 4
    tokens, lengths = torch.tensor([[0, 0, 5, 6], [7, 8, 9, 3]]), torch.tensor([2, 4])
    x, used = net.embed(tokens, lengths)
    assert x.shape == (2, 4, 6) and torch.equal(used, lengths)
    assert torch.equal(x[0, :2], net.embedding(torch.tensor([5, 6])))  # left-aligned: the review first
    assert net(tokens, lengths).shape == (2, 4)
    binary = TextClassifierNet(**SMALL)  # the default encoder: an LSTM
    assert isinstance(binary.encoder, RecurrentEncoder) and binary(tokens, lengths).shape == (2,)


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_every_encoder_classifies_a_padded_batch_as_each_review_alone(name: str) -> None:
    torch.manual_seed(0)
    net = TextClassifierNet(**SMALL, num_classes=3, encoder={"name": name}, bigram_buckets=13, bigram_dim=2).eval()
    reviews = [torch.randint(2, 40, (n,)) for n in (7, 1, 4)]
    with torch.no_grad():
        alone = torch.cat([net(r.unsqueeze(0), torch.tensor([len(r)])) for r in reviews])
        for side in ("pre", "post"):
            batch = torch.zeros(3, 9, dtype=torch.long)
            for i, r in enumerate(reviews):
                if side == "pre":
                    batch[i, 9 - len(r) :] = r
                else:
                    batch[i, : len(r)] = r
            torch.testing.assert_close(net(batch, torch.tensor([7, 1, 4])), alone, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"num_classes": 1}, "model.num_classes=1: use >= 2"),
        ({"num_classes": 2.5}, "model.num_classes=2.5: use a whole number"),
        ({"init": "xavier"}, "model.init='xavier': use one of"),
        ({"encoder": {"name": "lstm", "hidden": 3}}, "model.encoder.hidden: not a setting of the lstm encoder"),
        ({"encoder": "lstm"}, "model.encoder='lstm': give a mapping"),
    ],
)
def test_bad_network_settings_are_one_line_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(SettingError) as info:
        SequenceClassifier(**SMALL, **kwargs)
    assert message in str(info.value) and "\n" not in str(info.value)


def batch(labels: list[float], seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randint(2, 40, (len(labels), 8), generator=gen)
    return {"tokens": tokens, "lengths": torch.full((len(labels),), 8), "labels": torch.tensor(labels)}


def test_multiclass_uses_cross_entropy_and_softmax_and_binary_one_logit() -> None:
    torch.manual_seed(0)
    multi = SequenceClassifier(**SMALL, num_classes=3, encoder={"name": "nbow"})
    data = batch([0.0, 2.0, 1.0, 2.0])  # the data modules' float class ids
    loss, probs, target = multi._shared_step(data)
    logits = multi(data["tokens"], data["lengths"])
    torch.testing.assert_close(loss, nn.functional.cross_entropy(logits, torch.tensor([0, 2, 1, 2])))
    assert target.tolist() == [0, 2, 1, 2] and probs.shape == (4, 3)
    torch.testing.assert_close(multi.predict_step(data, 0).sum(-1), torch.ones(4))
    binary = SequenceClassifier(**SMALL, encoder={"name": "nbow"})
    loss, probs, target = binary._shared_step(batch([1.0, 0.0, 0.7, 0.2]))  # soft labels: binary only
    assert probs.shape == (4,) and target.tolist() == [1, 0, 1, 0]
    assert binary.test_auroc is not None and multi.test_auroc is None


class Batches(L.LightningDataModule):
    """Fixed random batches with `num_classes` classes, for fit and test."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.batches = [batch([float(i % num_classes) for i in range(6)], seed=s) for s in range(4)]

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.batches, batch_size=None)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.batches[:2], batch_size=None)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.batches[2:], batch_size=None)


def fit_and_test(model: SequenceClassifier, tmp_path: Path, num_classes: int) -> dict[str, float]:
    trainer = L.Trainer(
        max_epochs=2, default_root_dir=tmp_path, logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    trainer.fit(model, datamodule=Batches(num_classes))
    assert "val/acc_best" in trainer.callback_metrics
    return trainer.test(model, datamodule=Batches(num_classes), verbose=False)[0]


def test_multiclass_training_reports_accuracy_and_macro_f1(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = SequenceClassifier(**SMALL, num_classes=3, encoder={"name": "cnn", "channels": 4}, lr=0.01)
    results = fit_and_test(model, tmp_path, 3)
    assert set(results) == {"test/loss", "test/acc", "test/f1"}
    probs = torch.cat([model.predict_step(b, 0) for b in Batches(3).test_dataloader()])
    target = torch.cat([b["labels"] for b in Batches(3).test_dataloader()]).long()
    predicted = probs.argmax(-1)
    assert results["test/acc"] == pytest.approx((predicted == target).float().mean().item())
    f1 = [
        2 * ((predicted == c) & (target == c)).sum() / ((predicted == c).sum() + (target == c).sum()).clamp(min=1)
        for c in range(3)
    ]
    assert results["test/f1"] == pytest.approx(torch.stack(f1).mean().item(), abs=1e-6)  # macro: classes alike


def test_checkpoints_load_with_weights_only_and_without_hydra(tmp_path: Path) -> None:
    """The encoder arrives from Hydra as a DictConfig: saved as a plain dict, so the checkpoint loads with
    `weights_only=True` through Lightning's `load_from_checkpoint` and seqsent's `load_classifier`."""
    torch.manual_seed(0)
    spec = OmegaConf.create({"name": "transformer", "d_model": 8, "num_heads": 2, "ff_size": 16})
    model = SequenceClassifier(**SMALL, num_classes=4, encoder=spec)
    assert type(model.hparams.encoder) is dict
    fit_and_test(model, tmp_path, 4)
    path = next((tmp_path / "checkpoints").glob("*.ckpt"))
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    assert ckpt[FORMAT_KEY] == FORMAT == 2
    assert ckpt["hyper_parameters"]["encoder"] == {"name": "transformer", "d_model": 8, "num_heads": 2, "ff_size": 16}
    data = batch([0.0, 1.0, 3.0])
    model.eval()
    for loaded in (SequenceClassifier.load_from_checkpoint(path, weights_only=True), load_classifier(path)):
        loaded.eval()
        torch.testing.assert_close(loaded.predict_step(data, 0), model.predict_step(data, 0))


def test_a_checkpoint_of_seqsent_0_1_is_refused_naming_the_version(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = SequenceClassifier(**SMALL, encoder={"name": "lstm", "hidden_size": 4})
    fit_and_test(model, tmp_path, 2)
    path = next((tmp_path / "checkpoints").glob("*.ckpt"))
    old = torch.load(path, weights_only=True)
    del old[FORMAT_KEY]
    torch.save(old, path)
    for load in (load_classifier, SequenceClassifier.load_from_checkpoint):
        with pytest.raises(SeqsentError, match=r"written by seqsent 0.1 \(before the encoder registry\): retrain it"):
            load(path)
