"""ScratchLSTM: the gate-by-gate LSTM equals nn.LSTM (outputs, states, gradients) and swaps in for it."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from seqsent.checkpoint import load_classifier
from seqsent.data.batching import pad
from seqsent.models import CELLS, RecurrentEncoder, SequenceClassifier
from seqsent.models.classifier import FORMAT, FORMAT_KEY
from seqsent.models.scratch_lstm import ScratchLSTM


def pair(input_size: int = 5, hidden_size: int = 7) -> tuple[nn.LSTM, ScratchLSTM]:
    torch.manual_seed(0)
    ref = nn.LSTM(input_size, hidden_size, batch_first=True).double()
    scratch = ScratchLSTM(input_size, hidden_size).double()
    scratch.load_state_dict(ref.state_dict())
    return ref, scratch


def test_parameters_are_named_and_shaped_like_nn_lstm() -> None:
    ref, scratch = nn.LSTM(5, 7, batch_first=True), ScratchLSTM(5, 7)
    assert {k: v.shape for k, v in scratch.state_dict().items()} == {k: v.shape for k, v in ref.state_dict().items()}
    assert scratch.mode == "LSTM" and scratch.hidden_size == 7 and "lstm_scratch" in CELLS
    bound = 1 / math.sqrt(7)  # PyTorch's default init: uniform(-1/sqrt(H), 1/sqrt(H))
    assert all(p.abs().max() <= bound for p in scratch.parameters())
    assert all(p.std() > bound / 4 for p in scratch.parameters())


def test_outputs_states_and_gradients_equal_nn_lstm() -> None:
    ref, scratch = pair()
    x = torch.randn(3, 11, 5, dtype=torch.float64)
    results = []
    for module in (ref, scratch):
        module.zero_grad()
        inp = x.clone().requires_grad_(True)
        out, (h, c) = module(inp)
        (out.sin().sum() + h.sum() * 0.5 + c.square().sum()).backward()
        grads = {name: p.grad.clone() for name, p in module.named_parameters()}
        results.append((out, h, c, inp.grad, grads))
    (out_a, h_a, c_a, gx_a, g_a), (out_b, h_b, c_b, gx_b, g_b) = results
    assert out_b.shape == (3, 11, 7) and h_b.shape == c_b.shape == (1, 3, 7)
    for a, b in ((out_a, out_b), (h_a, h_b), (c_a, c_b), (gx_a, gx_b)):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)
    for name in g_a:
        torch.testing.assert_close(g_b[name], g_a[name], atol=1e-5, rtol=1e-5)


def test_initial_state_and_time_major_inputs() -> None:
    torch.manual_seed(0)
    ref = nn.LSTM(4, 6).double()  # batch_first=False
    scratch = ScratchLSTM(4, 6, batch_first=False).double()
    scratch.load_state_dict(ref.state_dict())
    x = torch.randn(9, 2, 4, dtype=torch.float64)
    hx = (torch.randn(1, 2, 6, dtype=torch.float64), torch.randn(1, 2, 6, dtype=torch.float64))
    for a, b in zip(ref(x, hx)[0], scratch(x, hx)[0]):
        torch.testing.assert_close(b, a, atol=1e-10, rtol=1e-10)


def test_recorded_gates_follow_the_equations() -> None:
    _, scratch = pair()
    scratch.record_gates = True
    out, (h, c) = scratch(torch.randn(2, 6, 5, dtype=torch.float64))
    gates = scratch.last_gates
    assert gates is not None and set(gates) == {"f", "i", "g", "o"}
    assert all(g.shape == (2, 6, 7) and not g.requires_grad for g in gates.values())
    cell = torch.zeros(2, 7, dtype=torch.float64)
    for t in range(6):  # C_t = f * C_{t-1} + i * C~_t, h_t = o * tanh(C_t)
        cell = gates["f"][:, t] * cell + gates["i"][:, t] * gates["g"][:, t]
        torch.testing.assert_close(out[:, t].detach(), gates["o"][:, t] * torch.tanh(cell))
    torch.testing.assert_close(c[0].detach(), cell)
    assert all(((g > 0) & (g < 1)).all() for k, g in gates.items() if k != "g")


def classifier(cell: str, **encoder_settings) -> SequenceClassifier:
    return SequenceClassifier(vocab_size=40, embed_dim=6, encoder={"name": cell, "hidden_size": 5, **encoder_settings})


@pytest.mark.parametrize("layers,bi,pooling", [(1, False, "last"), (2, True, "max")])
def test_classifier_with_lstm_scratch_equals_lstm(layers: int, bi: bool, pooling: str) -> None:
    """A state dict (checkpoint) of one loads into the other; logits and gradients agree."""
    torch.manual_seed(0)
    kwargs = {"num_layers": layers, "bidirectional": bi, "pooling": pooling}
    ref = classifier("lstm", **kwargs).double()
    scratch = classifier("lstm_scratch", **kwargs).double()
    scratch.load_state_dict(ref.state_dict())  # strict: the keys match
    ref.load_state_dict(scratch.state_dict())
    seqs = [torch.randint(2, 40, (n,)).numpy() for n in (9, 4, 1)]
    tokens, lengths = pad(seqs, "pre"), torch.tensor([9, 4, 1])
    grads = []
    for model in (ref, scratch):
        logits = model(tokens, lengths)
        model.zero_grad()
        logits.sum().backward()
        grads.append((logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}))
    torch.testing.assert_close(grads[1][0], grads[0][0], atol=1e-5, rtol=1e-5)
    for name, grad in grads[0][1].items():
        torch.testing.assert_close(grads[1][1][name], grad, atol=1e-5, rtol=1e-5)


def test_keras_init_works_on_scratch_lstm() -> None:
    torch.manual_seed(0)
    model = classifier("lstm_scratch", init="keras")
    lstm = model.net.encoder.forward_layers[0]
    assert isinstance(lstm, ScratchLSTM)
    bias = lstm.bias_ih_l0 + lstm.bias_hh_l0
    assert torch.equal(bias[5:10], torch.ones(5)) and bias[:5].abs().sum() == 0 and bias[10:].abs().sum() == 0
    w_hh = lstm.weight_hh_l0.detach()
    torch.testing.assert_close(w_hh.T @ w_hh, torch.eye(5), atol=1e-5, rtol=0)


@pytest.mark.parametrize("side", ["pre", "post"])
@pytest.mark.parametrize("bi,pooling", [(False, "last"), (True, "mean")])
def test_padding_invariance(side: str, bi: bool, pooling: str) -> None:
    torch.manual_seed(0)
    model = classifier("lstm_scratch", bidirectional=bi, pooling=pooling).eval()
    seqs = [torch.randint(2, 40, (n,)).numpy() for n in (7, 3, 1)]
    with torch.no_grad():
        batched = model(pad(seqs, side, length=10), torch.tensor([len(s) for s in seqs]))
        alone = torch.cat([model(torch.from_numpy(s).long().unsqueeze(0), torch.tensor([len(s)])) for s in seqs])
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=1e-5)


def test_encoder_accepts_the_cell_name() -> None:
    enc = RecurrentEncoder("lstm_scratch", input_size=4, hidden_size=3, num_layers=2, bidirectional=True)
    assert enc(torch.randn(2, 5, 4), torch.tensor([5, 2])).shape == (2, 6)


def test_checkpoints_load_across_lstm_and_lstm_scratch(tmp_path: Path) -> None:
    torch.manual_seed(0)
    ref = classifier("lstm").eval()
    tokens, lengths = torch.randint(2, 40, (2, 6)), torch.tensor([6, 3])
    for cell in ("lstm_scratch", "lstm"):
        path = tmp_path / f"{cell}.ckpt"
        hparams = {**dict(ref.hparams), "encoder": {**ref.hparams.encoder, "name": cell}}  # relabelled, and back
        torch.save({"state_dict": ref.state_dict(), "hyper_parameters": hparams, FORMAT_KEY: FORMAT}, path)
        model = load_classifier(path)
        assert model.hparams.encoder["name"] == cell and model.net.encoder.cell == cell
        with torch.no_grad():
            torch.testing.assert_close(model(tokens, lengths), ref(tokens, lengths), atol=1e-5, rtol=1e-5)
