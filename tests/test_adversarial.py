"""Adversarial (AT) and virtual adversarial (VAT) training on the embedded input (seqsent.models.adversarial)."""

from __future__ import annotations

import lightning as L
import pytest
import torch
import torch.nn.functional as F

from seqsent.data import SyntheticDataModule
from seqsent.errors import SettingError
from seqsent.models import SequenceClassifier, TextClassifierNet
from seqsent.models.adversarial import Adversary, kl_with_logits, make_adversary, scaled, vat_loss

LENGTHS = torch.tensor([7, 3, 5, 1])


def tiny_net(encoder: str = "cnn", num_classes: int = 2) -> TextClassifierNet:
    torch.manual_seed(0)
    return TextClassifierNet(vocab_size=50, num_classes=num_classes, embed_dim=8, encoder={"name": encoder})


def batch(num_classes: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    tokens = torch.randint(2, 50, (4, 7), generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([0.0, 1.0, 1.0, 0.0]) if num_classes == 2 else torch.tensor([0.0, 1.0, 2.0, 1.0])
    return tokens, labels


def loss_of(net: TextClassifierNet, labels: torch.Tensor):
    if net.num_classes == 2:
        return lambda logits: F.binary_cross_entropy_with_logits(logits, labels)
    return lambda logits: F.cross_entropy(logits, labels.long())


def perturbed_inputs(net: TextClassifierNet, adversary: Adversary, num_classes: int = 2) -> tuple[torch.Tensor, list]:
    """The embedded batch and every input the adversary gave `classify_embedded`."""
    tokens, labels = batch(num_classes)
    x, lengths = net.embed(tokens, LENGTHS)
    logits = net.classify_embedded(x, lengths)
    seen = []
    clean = net.classify_embedded

    def recording(inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        seen.append(inputs.detach().clone())
        return clean(inputs, lengths)

    net.classify_embedded = recording
    adversary(net, x, lengths, logits, loss_of(net, labels)(logits), loss_of(net, labels))
    return x.detach(), seen


@pytest.mark.parametrize("num_classes", [2, 3])
@pytest.mark.parametrize("kind", ["at", "vat"])
def test_the_perturbation_has_norm_epsilon_per_example_and_leaves_the_padding(kind: str, num_classes: int) -> None:
    net = tiny_net(num_classes=num_classes)
    x, seen = perturbed_inputs(net, Adversary(kind, 0.7, 0.01), num_classes)
    assert len(seen) == (1 if kind == "at" else 2)  # VAT: the power iteration's probe, then the perturbation
    for norm, inputs in zip([0.01, 0.7][-len(seen) :], seen):
        r = inputs - x
        assert torch.allclose(torch.linalg.vector_norm(r, dim=(1, 2)), torch.full((4,), norm), rtol=1e-4)
        for row, length in enumerate(LENGTHS):
            assert (r[row, length:] == 0).all() and (r[row, :length] != 0).any()


def test_the_at_perturbation_follows_the_gradient_of_the_loss() -> None:
    net = tiny_net("lstm")
    tokens, labels = batch()
    x, lengths = net.embed(tokens, LENGTHS)
    (grad,) = torch.autograd.grad(loss_of(net, labels)(net.classify_embedded(x, lengths)), x)
    _, seen = perturbed_inputs(net, Adversary("at", 0.5, 0.1))
    r = seen[0] - x.detach()
    cosine = F.cosine_similarity(r.flatten(1), grad.flatten(1), dim=1)
    assert torch.allclose(cosine, torch.ones(4), atol=1e-5)


def test_scaled_keeps_a_zero_gradient_zero() -> None:
    d = torch.zeros(2, 3, 4)
    d[0, 0, 0] = 1e-30  # far below float32's squares: scaled first, so still a unit direction
    r = scaled(d, torch.tensor([3, 3]), 2.0)
    assert r[0, 0, 0].item() == pytest.approx(2.0) and (r[1] == 0).all()


def test_kl_with_logits_is_the_bernoulli_and_the_categorical_divergence() -> None:
    p, q = torch.tensor([0.3, -2.0]), torch.tensor([1.0, 0.5])
    pp, qq = torch.sigmoid(p), torch.sigmoid(q)
    expected = (pp * (pp / qq).log() + (1 - pp) * ((1 - pp) / (1 - qq)).log()).mean()
    assert kl_with_logits(p, q).item() == pytest.approx(expected.item(), rel=1e-5)
    p3, q3 = torch.randn(5, 3), torch.randn(5, 3)
    expected3 = (p3.softmax(-1) * (p3.log_softmax(-1) - q3.log_softmax(-1))).sum(-1).mean()
    assert kl_with_logits(p3, q3).item() == pytest.approx(expected3.item(), rel=1e-5)
    assert kl_with_logits(p3, p3).item() == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize("num_classes", [2, 3])
def test_the_vat_divergence_vanishes_as_epsilon_goes_to_zero(num_classes: int) -> None:
    net = tiny_net("lstm", num_classes)
    tokens, _ = batch(num_classes)
    x, lengths = net.embed(tokens, LENGTHS)
    logits = net.classify_embedded(x, lengths)
    small, mid, big = (vat_loss(net, x, lengths, logits, eps, 1e-3).item() for eps in (1e-4, 1.0, 3.0))
    assert abs(small) < 1e-6 and 1e-5 < mid < big  # float32 rounding: about 1e-8 either side of 0


def test_settings_out_of_range_are_one_line() -> None:
    assert make_adversary("none", 0.5, 0.1) is None
    with pytest.raises(SettingError, match=r"model.adversarial='fgsm': use one of \('none', 'at', 'vat'\)"):
        SequenceClassifier(adversarial="fgsm")
    with pytest.raises(SettingError, match="model.adversarial_epsilon=0.0, model.vat_xi=0.1: use positive"):
        SequenceClassifier(adversarial="at", adversarial_epsilon=0.0)


def trained(model: SequenceClassifier, steps: int) -> L.Trainer:
    """`model` fitted for `steps` batches of small synthetic data (no validation, nothing written)."""
    data = SyntheticDataModule(n_train=96, n_test=16, vocab_size=120, batch_size=16, max_len=40)
    trainer = L.Trainer(
        max_steps=steps,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    trainer.fit(model, datamodule=data)
    return trainer


@pytest.mark.parametrize("encoder", ["rnn", "lstm", "cnn", "transformer"])
@pytest.mark.parametrize("kind", ["at", "vat"])
def test_training_adds_a_positive_adversarial_loss_for_every_encoder(encoder: str, kind: str) -> None:
    torch.manual_seed(0)
    model = SequenceClassifier(
        vocab_size=120, embed_dim=8, encoder={"name": encoder}, dropout=0.1, bigram_buckets=32, bigram_dim=4,
        adversarial=kind,
    )  # fmt: skip
    before = [p.detach().clone() for p in model.parameters()]
    metrics = trained(model, 3).callback_metrics
    assert metrics["train/adv_loss"] > 0 and metrics["train/embed_norm"] > 0
    assert torch.isfinite(metrics["train/loss"])
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_adversarial_training_works_with_a_frozen_embedding() -> None:
    model = SequenceClassifier(
        vocab_size=120, embed_dim=8, encoder={"name": "gru"}, freeze_embeddings=True, adversarial="at"
    )
    embedding = model.net.embedding.weight.detach().clone()
    assert trained(model, 2).callback_metrics["train/adv_loss"] > 0
    assert torch.equal(model.net.embedding.weight, embedding)


def test_on_a_trained_model_the_at_loss_exceeds_the_clean_loss_and_a_random_perturbations() -> None:
    torch.manual_seed(0)
    model = SequenceClassifier(vocab_size=120, embed_dim=16, encoder={"name": "lstm", "hidden_size": 16}, lr=1e-2)
    trained(model, 30)
    net = model.net.eval()
    data = SyntheticDataModule(n_train=96, n_test=16, vocab_size=120, batch_size=64, max_len=40)
    data.setup("fit")
    b = next(iter(data.train_dataloader()))
    x, lengths = net.embed(b["tokens"], b["lengths"])
    x = x.detach().requires_grad_()
    logits = net.classify_embedded(x, lengths)
    loss = F.binary_cross_entropy_with_logits(logits, b["labels"])
    adv = Adversary("at", 1.0, 0.1)(
        net, x, lengths, logits, loss, lambda z: F.binary_cross_entropy_with_logits(z, b["labels"])
    )
    noise = scaled(torch.randn_like(x), lengths, 1.0)
    random = F.binary_cross_entropy_with_logits(net.classify_embedded(x + noise, lengths), b["labels"])
    assert adv.item() > random.item() and adv.item() > loss.item() * 1.05
