"""Encoders: shapes, settings, and what each computes (the padding tests: tests/test_encoders_padding.py)."""

from __future__ import annotations

import pytest
import torch

from seqsent.data.batching import pad
from seqsent.errors import SettingError
from seqsent.models import RecurrentEncoder, SequenceClassifier, left_align, masked_pool, reverse_within_lengths
from seqsent.models.cnn import CNNEncoder
from seqsent.models.nbow import NBOWEncoder
from seqsent.models.transformer import TransformerEncoder, sinusoidal

CONFIGS = [
    (cell, layers, bi, pooling)
    for cell in ("rnn", "lstm", "gru")
    for layers, bi in ((1, False), (2, True))
    for pooling in ("last", "mean", "max")
]


def lstm(**settings: object) -> dict:
    """An lstm encoder spec."""
    return {"name": "lstm", **settings}


def test_reverse_within_lengths_is_an_involution() -> None:
    x = torch.arange(2 * 5).view(2, 5, 1).float()
    lengths = torch.tensor([3, 5])
    rev = reverse_within_lengths(x, lengths)
    assert rev[0, :, 0].tolist() == [2.0, 1.0, 0.0, 3.0, 4.0]
    assert rev[1, :, 0].tolist() == [9.0, 8.0, 7.0, 6.0, 5.0]
    assert torch.equal(reverse_within_lengths(rev, lengths), x)
    time_major = reverse_within_lengths(x.transpose(0, 1).contiguous(), lengths, dim=0)  # (T, B, 1)
    assert torch.equal(time_major.transpose(0, 1), rev)


def test_sequence_gives_batch_first_outputs_of_the_layers() -> None:
    """`sequence` keeps its batch-first API over the time-major layers: nn.LSTM(batch_first=True) with
    the same weights gives the same per-step outputs, and the backward direction reads reversed reviews."""
    torch.manual_seed(0)
    encoder = RecurrentEncoder("lstm", input_size=3, hidden_size=4, bidirectional=True)
    x, lengths = torch.randn(2, 6, 3), torch.tensor([6, 4])
    fwd, bwd_rev = encoder.sequence(x, lengths)
    ref = torch.nn.LSTM(3, 4, batch_first=True)
    ref.load_state_dict(encoder.forward_layers[0].state_dict())
    torch.testing.assert_close(fwd, ref(x)[0])
    ref.load_state_dict(encoder.backward_layers[0].state_dict())
    torch.testing.assert_close(bwd_rev, ref(reverse_within_lengths(x, lengths))[0])


def test_left_align_handles_both_padding_sides() -> None:
    seqs = [torch.tensor([5, 6, 7]).numpy(), torch.tensor([8]).numpy()]
    lengths = torch.tensor([3, 1])
    for side in ("pre", "post"):
        aligned = left_align(pad(seqs, side, length=4), lengths)
        assert aligned[0, :3].tolist() == [5, 6, 7]
        assert aligned[1, 0].item() == 8


@pytest.mark.parametrize("cell,layers,bi,pooling", CONFIGS)
def test_encoder_shapes(cell: str, layers: int, bi: bool, pooling: str) -> None:
    enc = RecurrentEncoder(cell, input_size=6, hidden_size=5, num_layers=layers, bidirectional=bi, pooling=pooling)
    out = enc(torch.randn(3, 7, 6), torch.tensor([7, 2, 1]))
    assert out.shape == (3, enc.output_size) == (3, 5 * (2 if bi else 1))
    assert torch.isfinite(out).all()


def test_padding_tokens_get_no_gradient_influence() -> None:
    """Changing the amount of padding changes neither logits nor gradients."""
    torch.manual_seed(0)
    model = SequenceClassifier(vocab_size=30, embed_dim=4, encoder=lstm(hidden_size=4, bidirectional=True))
    seqs = [torch.randint(2, 30, (n,)).numpy() for n in (5, 3)]
    lengths = torch.tensor([5, 3])
    logits, grads = [], []
    for length in (5, 20):
        model.zero_grad()
        out = model(pad(seqs, "pre", length=length), lengths)
        out.sum().backward()
        logits.append(out.detach())
        grads.append({name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None})
    torch.testing.assert_close(logits[0], logits[1], atol=1e-6, rtol=1e-5)
    assert grads[0].keys() == grads[1].keys() and "net.encoder.backward_layers.0.weight_hh_l0" in grads[0]
    for name in grads[0]:  # every weight: both directions, the embedding, the head
        torch.testing.assert_close(grads[0][name], grads[1][name], atol=1e-6, rtol=1e-5, msg=name)


def test_invalid_encoder_arguments_raise() -> None:
    with pytest.raises(ValueError, match="unknown cell"):
        RecurrentEncoder("transformer")
    with pytest.raises(ValueError, match="pooling"):
        RecurrentEncoder("lstm", pooling="attention")
    with pytest.raises(ValueError, match="learning rate"):
        SequenceClassifier(lr=-1.0)


def test_keras_init_matches_keras_defaults() -> None:
    torch.manual_seed(0)
    model = SequenceClassifier(vocab_size=40, embed_dim=8, init="keras", encoder=lstm(hidden_size=6, init="keras"))
    layer = model.net.encoder.forward_layers[0]
    bias = layer.bias_ih_l0 + layer.bias_hh_l0
    assert torch.equal(bias[6:12], torch.ones(6))  # forget gate (PyTorch order i, f, g, o)
    assert torch.equal(bias[:6], torch.zeros(6)) and torch.equal(bias[12:], torch.zeros(12))
    w_hh = layer.weight_hh_l0.detach()  # (4H, H): orthonormal columns over the stacked gates, as Keras
    torch.testing.assert_close(w_hh.T @ w_hh, torch.eye(6), atol=1e-5, rtol=0)
    limit = (6 / (8 + 4 * 6)) ** 0.5  # Glorot over the (in, 4H) kernel
    assert layer.weight_ih_l0.abs().max() <= limit and layer.weight_ih_l0.abs().max() > 0.8 * limit
    assert model.net.embedding.weight.abs().max() <= 0.05 and model.net.embedding.weight[0].abs().sum() == 0
    head = model.net.head[1]
    assert torch.equal(head.bias, torch.zeros(1)) and head.weight.abs().max() <= (6 / (6 + 1)) ** 0.5


def test_keras_per_gate_init_makes_each_gate_block_on_its_own() -> None:
    torch.manual_seed(0)
    model = SequenceClassifier(
        vocab_size=40, embed_dim=8, init="keras_per_gate", encoder=lstm(hidden_size=6, init="keras_per_gate")
    )
    layer = model.net.encoder.forward_layers[0]
    for block in layer.weight_hh_l0.detach().chunk(4):
        torch.testing.assert_close(block @ block.T, torch.eye(6), atol=1e-5, rtol=0)
    limit = (6 / (8 + 6)) ** 0.5  # Glorot over one gate's (in, H) block: wider than Keras'
    assert layer.weight_ih_l0.abs().max() > (6 / (8 + 4 * 6)) ** 0.5 and layer.weight_ih_l0.abs().max() <= limit
    assert model.net.embedding.weight.abs().max() <= 0.05


def test_training_metrics_accumulate_every_batch_of_the_epoch() -> None:
    torch.manual_seed(0)
    model = SequenceClassifier(vocab_size=50, embed_dim=8, encoder=lstm(hidden_size=8))
    correct = seen = 0
    losses = []
    for _ in range(3):
        tokens, lengths = torch.randint(1, 50, (6, 7)), torch.full((6,), 7)
        labels = torch.randint(0, 2, (6,)).float()
        with pytest.warns(UserWarning, match="self.log"):  # no trainer attached: logging is skipped
            loss = model.training_step({"tokens": tokens, "lengths": lengths, "labels": labels}, 0)
        with torch.no_grad():
            correct += int(((model(tokens, lengths) > 0).float() == labels).sum())
        seen += len(labels)
        losses.append(float(loss.detach()))
    assert float(model.train_acc.compute()) == pytest.approx(correct / seen)
    assert float(model.train_loss.compute()) == pytest.approx(sum(losses) / len(losses))


def test_recurrent_layers_read_the_embeddings_time_major_without_a_copy() -> None:
    """The classifier embeds tokens time-major; the first layer gets that very tensor (no transpose copy)."""
    torch.manual_seed(0)
    model = SequenceClassifier(vocab_size=30, embed_dim=4, encoder=lstm(hidden_size=4))
    seen: dict[str, torch.Tensor] = {}
    model.net.embedding.register_forward_hook(lambda m, args, out: seen.update(embedded=out))
    model.net.encoder.forward_layers[0].register_forward_hook(lambda m, args, out: seen.update(layer_in=args[0]))
    tokens = torch.randint(1, 30, (3, 7))
    model(tokens, torch.full((3,), 7))
    assert seen["embedded"].shape == (7, 3, 4) and seen["layer_in"].is_contiguous()
    assert seen["layer_in"].data_ptr() == seen["embedded"].data_ptr()


def test_a_resumed_run_keeps_its_best_validation_accuracy(monkeypatch: pytest.MonkeyPatch) -> None:
    """`val/acc_best` travels in the checkpoint: a resumed run whose next epoch validates lower keeps it."""
    from seqsent.models.classifier import BEST_KEY

    first = SequenceClassifier(vocab_size=50, embed_dim=8, encoder=lstm(hidden_size=8))
    checkpoint: dict = {}
    first.on_save_checkpoint(checkpoint)
    assert BEST_KEY not in checkpoint  # nothing validated yet: nothing to carry
    first.val_acc_best(torch.tensor(0.9))
    first.on_save_checkpoint(checkpoint)
    assert checkpoint[BEST_KEY] == pytest.approx(0.9)

    resumed = SequenceClassifier(vocab_size=50, embed_dim=8, encoder=lstm(hidden_size=8))
    resumed.on_load_checkpoint(checkpoint)
    monkeypatch.setattr(resumed, "_check_schedule_length", lambda: None)  # needs a trainer otherwise
    resumed.on_train_start()
    resumed.val_acc_best(torch.tensor(0.5))
    assert float(resumed.val_acc_best.compute()) == pytest.approx(0.9)
    fresh = SequenceClassifier(vocab_size=50, embed_dim=8, encoder=lstm(hidden_size=8))
    monkeypatch.setattr(fresh, "_check_schedule_length", lambda: None)
    fresh.on_train_start()
    fresh.val_acc_best(torch.tensor(0.5))
    assert float(fresh.val_acc_best.compute()) == pytest.approx(0.5)


def test_lstm_falls_back_to_fp32_under_cpu_autocast_without_a_kernel(monkeypatch) -> None:
    """Where oneDNN has no bf16 LSTM kernel (CPUs without AVX512) `nn.LSTM` under CPU autocast raises;
    the encoder runs its LSTM layers in fp32 there: the same summary as without autocast."""
    from seqsent.models import encoders

    torch.manual_seed(0)
    enc = RecurrentEncoder("lstm", 6, 5, num_layers=2, bidirectional=True)
    x, lengths = torch.randn(3, 7, 6), torch.tensor([7, 4, 1])
    expected = enc(x, lengths)
    monkeypatch.setattr(encoders, "cpu_lstm_autocast_works", lambda dtype: False)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = enc(x, lengths)
    assert out.dtype == torch.float32 and torch.equal(out, expected)
    out.sum().backward()
    assert all(p.grad is not None for p in enc.parameters())


def test_the_cpu_autocast_probe_matches_what_the_lstm_does() -> None:
    from seqsent.models.encoders import cpu_lstm_autocast_works

    lstm = torch.nn.LSTM(4, 3)
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            lstm(torch.randn(2, 1, 4))
        works = True
    except RuntimeError:
        works = False
    assert cpu_lstm_autocast_works(torch.bfloat16) is works


def test_the_probe_leaves_the_random_state_alone() -> None:
    """The probe builds an LSTM once per process: a seeded run must draw the same numbers either way."""
    from seqsent.models.encoders import cpu_lstm_autocast_works

    cpu_lstm_autocast_works.cache_clear()
    state = torch.get_rng_state()
    cpu_lstm_autocast_works(torch.bfloat16)
    assert torch.equal(torch.get_rng_state(), state)


def test_cnn_defaults_are_kims_and_a_short_review_reads_zero_padded_windows() -> None:
    """Kim (2014): widths 3, 4, 5 x 100 filters. A review shorter than a filter still has windows:
    the wide convolution reads it between width - 1 zero vectors on either side."""
    assert CNNEncoder(8).output_size == 300 and CNNEncoder(8).widths == (3, 4, 5)
    torch.manual_seed(0)
    enc = CNNEncoder(3, widths=[5], channels=2)
    review = torch.randn(1, 2, 3)  # 2 steps, width 5
    conv = enc.convs[0]
    framed = torch.cat([torch.zeros(1, 4, 3), review, torch.zeros(1, 4, 3)], dim=1)  # (1, 10, 3)
    windows = torch.relu(torch.nn.functional.conv1d(framed.transpose(1, 2), conv.weight, conv.bias))  # 6 windows
    expected = windows.max(-1).values
    garbage = torch.cat([review, torch.full((1, 6, 3), 50.0)], dim=1)
    torch.testing.assert_close(enc(garbage, torch.tensor([2])), expected)
    torch.testing.assert_close(enc(review, torch.tensor([2])), expected)


@pytest.mark.parametrize("widths", [[], [3, 0], [2.5], 3, "345"])
def test_cnn_refuses_bad_widths(widths: object) -> None:
    with pytest.raises(SettingError, match=r"widths=.*: use a list of one or more whole numbers >= 1, e.g. \[3, 4"):
        CNNEncoder(4, widths=widths)


def test_nbow_pools_the_input_vectors() -> None:
    x, lengths = torch.randn(2, 5, 3), torch.tensor([5, 2])
    enc = NBOWEncoder(3, pooling="mean_max")
    assert enc.output_size == 6 and not list(enc.parameters())
    out = enc(x, lengths)
    torch.testing.assert_close(out[1], torch.cat([x[1, :2].mean(0), x[1, :2].max(0).values]))
    with pytest.raises(SettingError, match=r"pooling='sum': use one of \('mean', 'max', 'mean_max'\)"):
        NBOWEncoder(3, pooling="sum")


def small_transformer(**settings: object) -> TransformerEncoder:
    return TransformerEncoder(6, **{"d_model": 8, "num_heads": 2, "ff_size": 16, "max_len": 10, **settings})


def test_transformer_attends_through_the_fused_kernel_with_a_boolean_key_mask(monkeypatch) -> None:
    """...and without attention dropout by default, so training takes the fused kernel on the CPU too."""
    calls: list[tuple[torch.Tensor, float]] = []
    fused = torch.nn.functional.scaled_dot_product_attention

    def spy(q, k, v, attn_mask=None, dropout_p=0.0, **kwargs):
        calls.append((attn_mask, dropout_p))
        return fused(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    x, lengths = torch.randn(2, 4, 6), torch.tensor([4, 2])
    small_transformer(num_layers=3).train()(x, lengths)
    assert len(calls) == 3 and all(m.dtype == torch.bool and m.shape == (2, 1, 1, 4) and p == 0 for m, p in calls)
    assert calls[0][0][1, 0, 0].tolist() == [True, True, False, False]
    enc = small_transformer(num_layers=1, attention_dropout=0.25)
    enc.train()(x, lengths)
    enc.eval()(x, lengths)
    assert [p for _, p in calls[3:]] == [0.25, 0.0]


def test_transformer_cls_pooling_reads_the_output_at_a_trained_first_step() -> None:
    torch.manual_seed(0)
    enc = small_transformer(pooling="cls").eval()
    x, lengths = torch.randn(2, 4, 6), torch.tensor([4, 3])
    states = enc.states(x, lengths)
    assert states.shape == (2, 4, 8)  # the review's steps, without the CLS step
    out = enc(x, lengths)
    assert out.shape == (2, 8) and not torch.allclose(out, states.mean(1))
    out.sum().backward()
    assert enc.cls is not None and enc.cls.grad.abs().sum() > 0


def test_transformer_positions() -> None:
    """Positions make word order matter; sinusoidal ones follow the formula at any length, learned
    ones stop at max_len with a one-line error."""
    torch.manual_seed(0)
    x, lengths = torch.randn(1, 5, 6), torch.tensor([5])
    for positions in ("learned", "sinusoidal"):
        enc = small_transformer(positions=positions, pooling="max").eval()
        assert not torch.allclose(enc(x, lengths), enc(x.flip(1), lengths))
    vectors = sinusoidal(50, 6)
    assert vectors[0].tolist() == [0.0, 1.0] * 3
    torch.testing.assert_close(vectors[7, 2], torch.sin(torch.tensor(7.0) / 10_000 ** (2 / 6)))
    assert small_transformer(positions="sinusoidal", max_len=4)(torch.randn(1, 9, 6), torch.tensor([9])).shape == (1, 8)
    with pytest.raises(SettingError, match="11 steps is longer than model.encoder.max_len=10 .*positions=sinusoidal"):
        small_transformer(pooling="cls")(torch.randn(1, 10, 6), torch.tensor([10]))  # + the CLS step


def test_transformer_projects_only_inputs_of_another_width() -> None:
    assert isinstance(TransformerEncoder(8, d_model=8, num_heads=2).project, torch.nn.Identity)
    assert TransformerEncoder(6, d_model=8, num_heads=2).project.in_features == 6
    with pytest.raises(SettingError, match="d_model=8, num_heads=3: use heads that divide d_model"):
        TransformerEncoder(6, d_model=8, num_heads=3)


def test_recurrent_states_and_gated_layers() -> None:
    """`states` are the per-step outputs `pooling=mean` averages; `gated_layers` the LSTM/GRU layers."""
    torch.manual_seed(0)
    enc = RecurrentEncoder("gru", 3, 4, num_layers=2, bidirectional=True, pooling="mean")
    x, lengths = torch.randn(2, 6, 3), torch.tensor([6, 2])
    states = enc.states(x, lengths)
    assert states.shape == (2, 6, 8)
    torch.testing.assert_close(enc(x, lengths), masked_pool(states, lengths, "mean"))
    assert enc.gated_layers() == enc.recurrent_layers() and len(enc.gated_layers()) == 4
    assert RecurrentEncoder("rnn", 3, 4).gated_layers() == []


@pytest.mark.parametrize("pooling", ["mean", "max"])
def test_transformer_output_is_its_pooling_of_its_states(pooling: str) -> None:
    """What diagnostics rely on: `masked_pool(states, lengths, pooling)` is the encoder's output."""
    torch.manual_seed(0)
    enc = small_transformer(pooling=pooling).eval()
    x, lengths = torch.randn(3, 5, 6), torch.tensor([5, 2, 1])
    torch.testing.assert_close(enc(x, lengths), masked_pool(enc.states(x, lengths), lengths, pooling))
