"""seqsent's CPU dropout: nn.Dropout's distribution, scaling and gradients, with a faster mask."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from seqsent.models import SequenceClassifier
from seqsent.models.dropout import Dropout, WordDropout


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_keeps_each_element_with_probability_one_minus_p_scaled_like_nn_dropout(p: float) -> None:
    torch.manual_seed(0)
    x = torch.rand(400_000) + 0.5  # no zeros, so every zero in the output is a dropped element
    y = Dropout(p).train()(x)
    kept = y != 0
    # 400k Bernoulli(1 - p) draws: the kept fraction is within 5 standard deviations of 1 - p
    std = (p * (1 - p) / x.numel()) ** 0.5
    assert abs(kept.float().mean().item() - (1 - p)) < 5 * std
    scale = torch.ones(1).div_(1 - p)  # float32 1 / (1 - p), as ATen's dropout scales its mask
    assert torch.equal(y[kept], x[kept] * scale)
    torch.manual_seed(0)
    reference = nn.Dropout(p).train()(x)  # the same distribution and the same scaled values
    assert torch.equal(reference[reference != 0], x[reference != 0] * scale)
    assert abs((reference != 0).float().mean().item() - kept.float().mean().item()) < 10 * std


def test_gradient_is_the_mask_times_the_scale() -> None:
    torch.manual_seed(1)
    x = torch.randn(8, 50, 16, requires_grad=True)
    y = Dropout(0.3).train()(x)
    g = torch.randn_like(y)
    y.backward(g)
    mask = (y != 0).float()
    torch.testing.assert_close(x.grad, g * mask / 0.7)


def test_same_seed_same_mask_and_eval_or_p0_is_identity() -> None:
    x = torch.randn(4, 30, 8)
    torch.manual_seed(3)
    a = Dropout(0.5).train()(x)
    torch.manual_seed(3)
    b = Dropout(0.5).train()(x)
    assert torch.equal(a, b)
    assert torch.equal(Dropout(0.5).eval()(x), x)
    assert torch.equal(Dropout(0.0).train()(x), x)
    assert torch.equal(Dropout(1.0).train()(x), torch.zeros_like(x))  # nn.Dropout's p=1


def test_bf16_input_keeps_its_dtype() -> None:
    x = torch.randn(4, 30, 8, dtype=torch.bfloat16)
    y = Dropout(0.5).train()(x)
    assert y.dtype == torch.bfloat16
    kept = y != 0
    torch.testing.assert_close(y[kept], x[kept] * 2, rtol=0, atol=0)


def test_classifier_and_encoder_use_it() -> None:
    model = SequenceClassifier(
        vocab_size=50,
        embed_dim=4,
        encoder={"name": "lstm", "hidden_size": 4, "num_layers": 2, "dropout": 0.5},
        dropout=0.5,
        embed_dropout=0.5,
    )
    dropouts = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    assert len(dropouts) == 3 and all(isinstance(m, Dropout) for m in dropouts)


def test_word_dropout_drops_whole_token_vectors_with_probability_p() -> None:
    torch.manual_seed(0)
    x = torch.rand(50, 2_000, 8) + 0.5  # 100k tokens, no zero entries
    y = WordDropout(0.25).train()(x)
    dropped = (y == 0).all(-1)
    assert torch.equal(dropped, (y == 0).any(-1))  # a token is dropped in every dimension or in none
    std = (0.25 * 0.75 / dropped.numel()) ** 0.5
    assert abs(dropped.float().mean().item() - 0.25) < 5 * std
    scale = torch.ones(1).div_(0.75)
    assert torch.equal(y[~dropped], x[~dropped] * scale)


def test_word_dropout_is_identity_in_eval_and_at_zero_and_rejects_bad_p() -> None:
    x = torch.randn(4, 30, 8)
    assert torch.equal(WordDropout(0.3).eval()(x), x)
    assert torch.equal(WordDropout(0.0).train()(x), x)
    with pytest.raises(ValueError, match="word dropout"):
        WordDropout(1.0)
    with pytest.raises(ValueError, match="model.word_dropout"):
        SequenceClassifier(vocab_size=50, embed_dim=4, encoder={"name": "lstm", "hidden_size": 4}, word_dropout=-0.1)


def test_classifier_word_dropout_zeroes_dropped_tokens_before_the_encoder() -> None:
    torch.manual_seed(0)
    model = SequenceClassifier(
        vocab_size=50, embed_dim=4, encoder={"name": "lstm", "hidden_size": 4}, word_dropout=0.5
    ).train()
    seen: list[torch.Tensor] = []
    model.net.encoder.register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
    tokens = torch.randint(2, 50, (3, 40))
    model(tokens, torch.full((3,), 40))
    zero_tokens = (seen[0] == 0).all(-1).float().mean().item()
    assert 0.3 < zero_tokens < 0.7  # ~half of the 120 tokens, none of which is padding
    model.eval()
    model(tokens, torch.full((3,), 40))
    assert not (seen[1] == 0).all(-1).any()
