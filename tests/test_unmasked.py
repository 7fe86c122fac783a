"""`model.unmasked_len`: the layers read the padding, as the notebook's Keras model (no `mask_zero`)."""

from __future__ import annotations

import pytest
import torch

from seqsent.data.batching import pad
from seqsent.models import SequenceClassifier
from seqsent.models.encoders import unmasked


def test_unmasked_pre_pads_every_review_to_the_length_from_either_side() -> None:
    seqs = [torch.tensor([5, 6, 7]).numpy(), torch.tensor([8]).numpy()]
    lengths = torch.tensor([3, 1])
    want = torch.tensor([[0, 0, 5, 6, 7], [0, 0, 0, 0, 8]])
    for side in ("pre", "post"):
        tokens, out_lengths = unmasked(pad(seqs, side), lengths, 5)
        assert torch.equal(tokens, want), side
        assert out_lengths.tolist() == [5, 5]
    tokens, _ = unmasked(pad(seqs, "post"), lengths, 2)  # longer than the length: its last tokens
    assert tokens.tolist() == [[6, 7], [0, 8]]


def model(unmasked_len: int, cell: str = "lstm") -> SequenceClassifier:
    torch.manual_seed(0)
    encoder = {"name": cell, "hidden_size": 5, "init": "keras"}
    return SequenceClassifier(vocab_size=30, embed_dim=6, encoder=encoder, init="keras", unmasked_len=unmasked_len)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_unmasked_model_reads_the_padding_the_same_way_whatever_the_batch(cell: str) -> None:
    """The review is pre-padded to unmasked_len inside the model: its logit does not depend on how the
    batch was padded, but it does depend on the padding's (trained) vector."""
    net = model(12, cell).eval()
    assert net.net.embedding.padding_idx is None and net.net.embedding.weight[0].abs().sum() > 0  # an ordinary row
    seqs = [torch.randint(1, 30, (n,)).numpy() for n in (9, 4, 1)]
    lengths = torch.tensor([9, 4, 1])
    with torch.no_grad():
        ref = net(pad(seqs, "pre"), lengths)
        for side, width in (("post", None), ("pre", 11), ("post", 12)):
            torch.testing.assert_close(net(pad(seqs, side, length=width), lengths), ref)
        alone = torch.cat([net(pad([s], "pre"), torch.tensor([len(s)])) for s in seqs])
        torch.testing.assert_close(alone, ref)
        net.net.embedding.weight[0] += 0.5  # the padding's vector changes what the shorter reviews give
        moved = net(pad(seqs, "pre"), lengths)
    assert not torch.allclose(moved[1:], ref[1:])


def test_masked_model_ignores_the_padding_vector_and_unmasked_trains_it() -> None:
    seqs = [torch.randint(1, 30, (n,)).numpy() for n in (7, 2)]
    tokens, lengths = pad(seqs, "pre"), torch.tensor([7, 2])
    masked = model(0)
    assert masked.net.embedding.padding_idx == 0 and masked.net.embedding.weight[0].abs().sum() == 0
    read = model(10)
    read(tokens, lengths).sum().backward()
    assert read.net.embedding.weight.grad[0].abs().sum() > 0  # the padding is trained, as in Keras


def test_negative_unmasked_len_is_refused() -> None:
    with pytest.raises(ValueError, match="unmasked_len"):
        SequenceClassifier(vocab_size=30, unmasked_len=-1)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru", "lstm_scratch"])
def test_single_bias_holds_bias_hh_at_zero_through_training(cell: str) -> None:
    """`model.encoder.single_bias`: one trained bias per gate as in Keras; bias_hh stays zero and untrained."""
    torch.manual_seed(0)
    encoder = {"name": cell, "hidden_size": 5, "bidirectional": True, "init": "keras"}
    net = SequenceClassifier(vocab_size=30, embed_dim=6, encoder={**encoder, "single_bias": True}, init="keras")
    optimizer = net.configure_optimizers()
    tokens, lengths = pad([torch.randint(1, 30, (n,)).numpy() for n in (6, 3)], "pre"), torch.tensor([6, 3])
    for _ in range(3):
        optimizer.zero_grad()
        net.loss_fn(net(tokens, lengths), torch.tensor([1.0, 0.0])).backward()
        optimizer.step()
    for layer in net.net.encoder.recurrent_layers():
        assert not layer.bias_hh_l0.requires_grad and layer.bias_hh_l0.grad is None
        assert torch.count_nonzero(layer.bias_hh_l0) == 0
        assert torch.count_nonzero(layer.bias_ih_l0) > 0  # the one bias that trains
    torch.manual_seed(0)
    two = SequenceClassifier(vocab_size=30, embed_dim=6, encoder=encoder, init="keras")
    assert all(p.requires_grad for p in two.parameters())
    assert sum(p.numel() for p in two.parameters() if p.requires_grad) - sum(
        p.numel() for p in net.parameters() if p.requires_grad
    ) == sum(layer.bias_hh_l0.numel() for layer in net.net.encoder.recurrent_layers())
