"""Adversarial (AT) and virtual adversarial (VAT) training on the embedded input (Miyato et al. 2017,
"Adversarial training methods for semi-supervised text classification").

    python -m seqsent.train model.adversarial=at model.adversarial_epsilon=0.5
    python -m seqsent.train model.adversarial=vat model.adversarial_epsilon=0.5 model.vat_xi=0.1

Both perturb what the encoder reads: `TextClassifierNet.embed`'s output x (B, T, D), word vectors with any
n-gram vectors beside them, after embedding dropout, as the paper adds the perturbation after its embedding
layer's dropout. A perturbation r has L2 norm `epsilon` per example over its (T, D) true steps and is zero on
the padding. The extra loss is added to the classification loss with weight 1, as in the paper.
- AT: r = epsilon * g / ||g|| with g the classification loss's gradient with respect to x; the extra loss is
  the classification loss on x + r.
- VAT: one power iteration from a random direction d of norm `xi` gives r from the gradient of
  KL(p(x) || p(x + d)) with respect to d; the extra loss is KL(p(x) || p(x + r)) with p(x) held fixed. It
  needs no labels (the paper's gains came from its unlabeled reviews; here it reads the training batches,
  soft-labeled reviews included when `data.soft_labels` adds them).
Unlike the paper, the embeddings are not normalized (its frequency-weighted mean and variance per
dimension): `epsilon` is in the embedding's own scale, and `train/embed_norm` (the mean norm of an
example's x) shows how large it is against the input.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqsent.errors import SettingError
from seqsent.models.pooling import step_mask

KINDS = ("none", "at", "vat")


@dataclass(frozen=True)
class Adversary:
    """The extra loss of `kind` ("at" or "vat") for one training batch."""

    kind: str
    epsilon: float
    xi: float

    def __call__(
        self,
        net: nn.Module,
        x: Tensor,
        lengths: Tensor,
        logits: Tensor,
        loss: Tensor,
        loss_of: Callable[[Tensor], Tensor],
    ) -> Tensor:
        """The extra loss for the embedded batch `x` (which requires grad) and its `lengths`, the clean
        `logits` computed from it, their classification `loss`, and `loss_of(logits)` for other logits."""
        if self.kind == "at":
            (grad,) = torch.autograd.grad(loss, x, retain_graph=True)
            return loss_of(net.classify_embedded(x + scaled(grad, lengths, self.epsilon), lengths))
        return vat_loss(net, x, lengths, logits, self.epsilon, self.xi)


def make_adversary(kind: str, epsilon: float, xi: float) -> Adversary | None:
    """The adversary `model.adversarial` names (None for "none"); a one-line error for a bad setting."""
    if kind not in KINDS:
        raise SettingError(f"model.adversarial={kind!r}: use one of {KINDS}")
    if not epsilon > 0 or not xi > 0:
        raise SettingError(
            f"model.adversarial_epsilon={epsilon}, model.vat_xi={xi}: use positive norms, e.g. 0.5 and 0.1"
        )
    return None if kind == "none" else Adversary(kind, epsilon, xi)


def true_steps(x: Tensor, lengths: Tensor) -> Tensor:
    """(B, T, 1): 1 at the true steps of left-aligned `x` (B, T, D), 0 at the padding."""
    return step_mask(lengths.to(x.device), x.shape[1]).unsqueeze(-1).to(x.dtype)


def scaled(d: Tensor, lengths: Tensor, norm: float) -> Tensor:
    """`d` (B, T, D) zeroed on the padding and scaled to L2 norm `norm` per example (a zero row stays zero)."""
    d = d * true_steps(d, lengths)
    # first to a largest entry of 1 (no underflow in the squares), so a nonzero row's norm is >= 1
    d = d / d.abs().amax(dim=(1, 2), keepdim=True).clamp_min(torch.finfo(d.dtype).tiny)
    return norm * d / torch.linalg.vector_norm(d, dim=(1, 2), keepdim=True).clamp_min(1.0)


def kl_with_logits(p_logits: Tensor, q_logits: Tensor) -> Tensor:
    """Mean over the batch of KL(p || q) between the class distributions of two logits: one logit per
    example (B,) is a two-class sigmoid, (B, C) a softmax."""
    if p_logits.dim() == 1:  # sigmoid(l) = softmax([0, l])[1]
        p_logits, q_logits = (torch.stack([torch.zeros_like(z), z], dim=-1) for z in (p_logits, q_logits))
    log_p, log_q = F.log_softmax(p_logits, dim=-1), F.log_softmax(q_logits, dim=-1)
    return F.kl_div(log_q, log_p, reduction="batchmean", log_target=True)


def vat_loss(net: nn.Module, x: Tensor, lengths: Tensor, logits: Tensor, epsilon: float, xi: float) -> Tensor:
    """KL(p(x) || p(x + r)) for VAT's r, found by one power iteration (p(x) held fixed)."""
    p_logits = logits.detach()
    d = scaled(torch.randn_like(x), lengths, xi).requires_grad_()
    kl = kl_with_logits(p_logits, net.classify_embedded(x.detach() + d, lengths))
    (grad,) = torch.autograd.grad(kl, d)
    return kl_with_logits(p_logits, net.classify_embedded(x + scaled(grad, lengths, epsilon), lengths))


def input_norm(x: Tensor, lengths: Tensor) -> Tensor:
    """The mean over the batch of each example's L2 norm over its true steps (epsilon's scale)."""
    return torch.linalg.vector_norm(x.detach() * true_steps(x, lengths), dim=(1, 2)).mean()
