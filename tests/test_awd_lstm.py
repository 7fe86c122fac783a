"""The AWD-LSTM body: locked dropout, concat pooling, weight dropout on the recurrent matrices, carried
state, and the `awd_lstm` encoder."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

from seqsent.errors import SettingError
from seqsent.models.awd_lstm import AWDLSTM
from seqsent.models.dropout import LockedDropout
from seqsent.models.encoders import RecurrentEncoder
from seqsent.models.pooling import masked_pool
from seqsent.models.registry import build_encoder


@pytest.mark.parametrize("dim", [0, 1])
def test_locked_dropout_draws_one_mask_per_sequence(dim: int) -> None:
    torch.manual_seed(0)
    x = torch.rand(6, 40, 50) + 0.5 if dim == 1 else torch.rand(40, 6, 50) + 0.5  # no zeros
    y = LockedDropout(0.5, dim=dim).train()(x)
    kept = (y != 0).float()
    first = kept.select(dim, 0).unsqueeze(dim)
    assert torch.equal(kept, first.expand_as(kept))  # every step has the first step's mask
    assert 0.3 < first.mean() < 0.7
    torch.testing.assert_close(y[y != 0], x[y != 0] * 2)
    assert torch.equal(LockedDropout(0.5, dim=dim).eval()(x), x)
    with pytest.raises(SettingError, match=r"locked dropout p=1.0: use a probability in \[0, 1\)"):
        LockedDropout(1.0)


@pytest.mark.parametrize("dim", [1, 0])
def test_concat_pooling_is_last_max_mean_side_by_side(dim: int) -> None:
    torch.manual_seed(0)
    states, lengths = torch.randn(3, 6, 4), torch.tensor([6, 1, 3])
    given = states if dim == 1 else states.transpose(0, 1)
    pooled = masked_pool(given, lengths, "concat", dim=dim)
    expected = torch.cat([masked_pool(states, lengths, how) for how in ("last", "max", "mean")], dim=-1)
    torch.testing.assert_close(pooled, expected)
    assert pooled.shape == (3, 12)


def test_the_recurrent_encoder_refuses_concat_pooling() -> None:
    """Its bidirectional `last` is not the joined states' last step: concat is the awd_lstm encoder's."""
    with pytest.raises(SettingError, match="unknown pooling 'concat'"):
        RecurrentEncoder("lstm", 4, 3, pooling="concat")


def test_layer_sizes_outputs_and_final_states() -> None:
    torch.manual_seed(0)
    enc = AWDLSTM(6, hidden_size=5, num_layers=3).eval()
    assert [(lay.input_size, lay.hidden_size) for lay in enc.layer_groups()] == [(6, 5), (5, 5), (5, 6)]
    assert enc.output_size == 18  # concat pooling over the last layer, which is input-sized (tying)
    assert AWDLSTM(6, 5, 2, output_size=4, pooling="max").output_size == 4
    outputs, finals = enc.run(torch.randn(2, 7, 6))
    assert [o.shape for o in outputs] == [(2, 7, 5), (2, 7, 5), (2, 7, 6)]
    assert [tuple(h.shape) for h, _ in finals] == [(1, 2, 5), (1, 2, 5), (1, 2, 6)]
    torch.testing.assert_close(finals[-1][0][0], outputs[-1][:, -1])  # h is the last step's output


def test_the_state_carries_across_consecutive_windows() -> None:
    """Two windows run one after the other from the carried state give the long window's outputs."""
    torch.manual_seed(0)
    enc = AWDLSTM(4, hidden_size=6, num_layers=2).eval()
    x = torch.randn(3, 10, 4)
    with torch.no_grad():
        whole, _ = enc.run(x)
        first, state = enc.run(x[:, :6])
        second, _ = enc.run(x[:, 6:], state)
        fresh, _ = enc.run(x[:, 6:])
    torch.testing.assert_close(torch.cat([first[-1], second[-1]], dim=1), whole[-1])
    assert not torch.allclose(fresh[-1], whole[-1][:, 6:])


def plain_lstm_stack(enc: AWDLSTM, x: torch.Tensor) -> torch.Tensor:
    """The last layer's outputs of the same weights run as plain `nn.LSTM`s (no dropout)."""
    steps = x.transpose(0, 1)
    for layer in enc.layers:
        copy = nn.LSTM(layer.input_size, layer.hidden_size)
        copy.load_state_dict(layer.state_dict())
        steps = copy(steps)[0]
    return steps.transpose(0, 1)


def test_weight_dropout_masks_the_recurrent_matrix_in_training_only() -> None:
    torch.manual_seed(0)
    enc = AWDLSTM(4, hidden_size=8, num_layers=2, weight_dropout=0.5, hidden_dropout=0.0)
    x = torch.randn(3, 12, 4)
    with torch.no_grad():
        eval_out = enc.eval().run(x)[0][-1]
        torch.testing.assert_close(eval_out, plain_lstm_stack(enc, x))  # eval: the raw weights, no mask
        torch.testing.assert_close(enc.run(x)[0][-1], eval_out, atol=0, rtol=0)
        enc.train()
        a, b = enc.run(x)[0][-1], enc.run(x)[0][-1]
    assert not torch.allclose(a, eval_out) and not torch.allclose(a, b)  # a new mask every forward pass


def test_the_gradient_reaches_the_raw_weight_through_one_mask() -> None:
    """A training forward's gradient of `weight_hh_l0` is zero exactly where the mask dropped an entry
    (about p of them); the parameter stays the raw weight under nn.LSTM's state-dict key."""
    torch.manual_seed(0)
    enc = AWDLSTM(4, hidden_size=16, num_layers=2, weight_dropout=0.4, hidden_dropout=0.0).train()
    raw = enc.layers[0].weight_hh_l0
    before = raw.detach().clone()
    enc.run(torch.randn(5, 20, 4))[0][-1].pow(2).sum().backward()
    assert enc.layers[0].weight_hh_l0 is raw and torch.equal(raw.detach(), before)
    for layer in enc.layers:
        zeros = (layer.weight_hh_l0.grad == 0).float().mean().item()
        assert 0.3 < zeros < 0.5, zeros
        assert (layer.weight_ih_l0.grad == 0).float().mean() < 0.05  # only the recurrent matrix is masked
    enc.zero_grad()
    enc.eval().run(torch.randn(5, 20, 4))[0][-1].pow(2).sum().backward()
    assert (enc.layers[0].weight_hh_l0.grad == 0).float().mean() < 0.05
    keys = {"weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"}
    assert set(enc.state_dict()) == {f"layers.{i}.{k}" for i in range(2) for k in keys}


def ops_run(enc: AWDLSTM, x: torch.Tensor) -> list[str]:
    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU]) as prof:
        enc.run(x)
    return [event.key for event in prof.key_averages()]


def test_each_layer_runs_the_fused_lstm_kernel_and_eval_draws_no_mask() -> None:
    torch.manual_seed(0)
    enc = AWDLSTM(4, hidden_size=8, num_layers=3, weight_dropout=0.5, hidden_dropout=0.3)
    x = torch.randn(2, 5, 4)
    for mode in ("train", "eval"):
        getattr(enc, mode)()
        ops = ops_run(enc, x)
        assert "aten::lstm" in ops, (mode, ops)  # one fused call per layer, not a loop over cells
        assert ("aten::rand" in ops) == (mode == "train"), (mode, ops)


def test_a_padded_batch_summarizes_each_row_as_alone_both_directions() -> None:
    torch.manual_seed(0)
    enc = AWDLSTM(4, hidden_size=5, num_layers=2, reverse=True).eval()
    rows = [torch.randn(n, 4) for n in (7, 2, 5)]
    x = torch.randn(3, 7, 4) * 100
    for i, row in enumerate(rows):
        x[i, : len(row)] = row
    lengths = torch.tensor([7, 2, 5])
    with torch.no_grad():
        batched = enc(x, lengths)
        alone = torch.cat([enc(r.unsqueeze(0), torch.tensor([len(r)])) for r in rows])
        backward = enc.states(x[:1], lengths[:1])
        enc.reverse = False
        forward_on_flipped = enc.states(rows[0].flip(0).unsqueeze(0), lengths[:1])
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(backward, forward_on_flipped)


def test_the_registry_builds_it_from_settings() -> None:
    enc = build_encoder({"name": "awd_lstm", "hidden_size": 6, "num_layers": 2, "pooling": "mean"}, input_size=3)
    assert isinstance(enc, AWDLSTM) and enc.output_size == 3
    assert enc(torch.randn(2, 4, 3), torch.tensor([4, 2])).shape == (2, 3)


@pytest.mark.parametrize(
    "settings,message",
    [
        ({"num_layers": 0}, "num_layers=0: use >= 1"),
        ({"output_size": 0}, "output_size=0: use >= 1, or null"),
        ({"weight_dropout": 1.0}, r"weight_dropout=1.0: use a probability in \[0, 1\)"),
        ({"hidden_dropout": -0.1}, r"hidden_dropout=-0.1: use a probability"),
        ({"pooling": "sum"}, "pooling='sum': use one of"),
        ({"pooling": "max", "reverse": "yes"}, r"model.encoder.reverse='yes': use true or false"),
    ],
)
def test_bad_settings_are_one_line_errors(settings: dict, message: str) -> None:
    with pytest.raises(SettingError, match=message) as info:
        build_encoder({"name": "awd_lstm", **settings}, input_size=4)
    assert "\n" not in str(info.value)
