"""Gradient flow over time and LSTM gate statistics of a `SequenceClassifier` on one batch.

flow = gradient_flow(model, batch)   # batch: {"tokens", "lengths", "labels"} as the data module gives
flow.mean_norms()                    # (T,): mean ||dLoss_b/dh_t|| at d = 0, 1, ... steps before the end
flow.geomean_norms()                 # (T,): their geometric mean (the typical review)
flow.gate_stats()                    # {"l0/forget_mean": ..., "l0/forget_saturated": ...} for LSTM layers

`h_t` are the per-step states of the top encoder layer's forward direction; steps are counted back from
each review's last token and averaged over the reviews that have them, only over the review's own
tokens (not the padding a model with `unmasked_len` reads). The loss is each review's own BCE loss
summed over the batch. What it shows: docs/diagnostics.md.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqsent.models.classifier import SequenceClassifier
from seqsent.models.scratch_lstm import ScratchLSTM

Batch = dict[str, Tensor]
GATES = {"f": "forget", "i": "input", "o": "output"}
SATURATION = (0.05, 0.95)  # a gate value below the first or above the second counts as saturated
TINY_NORM = 1e-45  # norms are floored here for the geometric mean: float32 gradients hold nothing smaller
CELLS: dict[str, Callable[..., nn.Module]] = {
    "RNN_TANH": nn.RNNCell,
    "RNN_RELU": functools.partial(nn.RNNCell, nonlinearity="relu"),
    "GRU": nn.GRUCell,
    "LSTM": nn.LSTMCell,
}


@dataclass
class GradFlow:
    """Sums over reviews (so batches merge by addition): per-distance gradient norms and gate stats."""

    norm_sum: Tensor  # (T,) float64: sum over reviews of ||dLoss_b/dh_t|| at distance d = end_b - t
    count: Tensor  # (T,) int64: reviews that have a step at distance d
    log_sum: Tensor  # (T,) float64: sum over reviews of ln max(norm, TINY_NORM)
    gate_sum: dict[str, float] = field(default_factory=dict)  # "l0/forget_mean" -> sum over valid gate values
    gate_count: dict[str, int] = field(default_factory=dict)  # "l0" -> valid (step, unit) pairs

    def mean_norms(self) -> Tensor:
        """(T,) mean norm per distance from the end; NaN where no review is that long."""
        return torch.where(self.count > 0, self.norm_sum / self.count.clamp(min=1), float("nan"))

    def geomean_norms(self) -> Tensor:
        """(T,) geometric mean norm per distance: the typical review's gradient (the mean follows the few
        reviews whose gradient survives, docs/diagnostics.md)."""
        return torch.where(self.count > 0, (self.log_sum / self.count.clamp(min=1)).exp(), float("nan"))

    def gate_stats(self) -> dict[str, float]:
        """Per LSTM layer: mean forget/input/output gate value and the saturated fraction of each."""
        return {key: value / self.gate_count[key.split("/")[0]] for key, value in self.gate_sum.items()}

    def merge(self, other: GradFlow) -> GradFlow:
        """The sums of both (batches of different widths are padded to the longer)."""
        return GradFlow(**{f.name: _add(getattr(self, f.name), getattr(other, f.name)) for f in fields(self)})


def lstm_layers(model: SequenceClassifier) -> dict[str, nn.Module]:
    """The encoder's LSTM layers (`nn.LSTM` or `ScratchLSTM`) named `l0`, `l1`, `l0_reverse`, ..."""
    encoder = model.encoder
    named = {f"l{i}": layer for i, layer in enumerate(encoder.forward_layers)}
    if encoder.backward_layers is not None:
        named.update({f"l{i}_reverse": layer for i, layer in enumerate(encoder.backward_layers)})
    return {name: layer for name, layer in named.items() if getattr(layer, "mode", "") == "LSTM"}


def gradient_flow(model: SequenceClassifier, batch: Batch) -> GradFlow:
    """Per-step gradient norms and LSTM gate sums of one batch, in eval mode.

    The fused kernels hide the states that feed the recurrence, so the top forward layer is unrolled
    step by step with its own parameters and the gradient is taken with respect to each step's state
    h_t: the total derivative, through all later steps. Leaves the model as it was (mode restored,
    no `.grad` written); cuDNN is off (its RNN backward needs train mode).
    """
    device = next(model.parameters()).device
    tokens, lengths = batch["tokens"].to(device), batch["lengths"].to(device)
    labels = batch["labels"].to(device)
    states: list[Tensor] = []
    inputs: dict[str, Tensor] = {}
    seen: list[Tensor] = []  # the lengths the encoder is given (not the reviews' own with `unmasked_len`)
    top = model.encoder.forward_layers[-1]
    hooks = [
        model.encoder.register_forward_pre_hook(lambda module, args: seen.append(args[1])),
        top.register_forward_hook(lambda module, args, out: unroll(module, args[0], states)),
        *(layer.register_forward_hook(_keep_input(inputs, name)) for name, layer in lstm_layers(model).items()),
    ]
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad(), torch.backends.cudnn.flags(enabled=False):
            logits = model(tokens, lengths)
            loss = F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype), reduction="sum")
            grads = torch.autograd.grad(loss, states, allow_unused=True, materialize_grads=True)
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    # (B, T) per-review norms, left-aligned steps; float64: squares of float32 gradients far back underflow
    norms = torch.stack([g.detach().double().norm(dim=-1) for g in grads], dim=1)
    # each review's last token is at step end_b; its own tokens are the n_b steps up to it
    end = seen[0].to(device) - 1
    n = torch.minimum(lengths, end + 1)
    distance = torch.arange(norms.size(1), device=device).unsqueeze(0)  # (1, D)
    valid = distance < n.unsqueeze(1)
    by_distance = norms.gather(1, (end.unsqueeze(1) - distance).clamp(min=0))
    logs = by_distance.clamp(min=TINY_NORM).log() * valid
    flow = GradFlow((by_distance * valid).sum(0).cpu(), valid.sum(0).long().cpu(), logs.sum(0).cpu())
    layers, (low, high) = lstm_layers(model), SATURATION
    for name, inp in inputs.items():
        step = torch.arange(inp.size(1), device=device).unsqueeze(0)  # (1, T)
        if name.endswith("_reverse"):  # reversed within the encoder's lengths: the review comes first
            mask = step < n.unsqueeze(1)
        else:
            mask = (step <= end.unsqueeze(1)) & (step > (end - n).unsqueeze(1))
        activations = lstm_gates(layers[name], inp)
        for key, label in GATES.items():
            values = activations[key][mask].double()  # (the reviews' own steps, H)
            flow.gate_sum[f"{name}/{label}_mean"] = float(values.sum())
            flow.gate_sum[f"{name}/{label}_saturated"] = float(((values < low) | (values > high)).sum())
        flow.gate_count[name] = int(mask.sum()) * layers[name].hidden_size
    return flow


def unroll(layer: nn.Module, x: Tensor, states: list[Tensor]) -> tuple[Tensor, Any]:
    """Run a one-layer `nn.RNN`/`nn.GRU`/`nn.LSTM`/`ScratchLSTM` step by step with its own parameters, on
    input in the layer's layout (`batch_first` or time-major); appends every step's state h_t (B, H) to
    `states`. Returns what the layer returns, in its layout."""
    mode, size, batch_first = layer.mode, layer.hidden_size, getattr(layer, "batch_first", True)
    if not batch_first:
        x = x.transpose(0, 1)
    cell = CELLS[mode](x.size(-1), size, device="meta")
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        setattr(cell, name, getattr(layer, f"{name}_l0"))
    h = c = x.new_zeros(x.size(0), size)
    for t in range(x.size(1)):
        if mode == "LSTM":
            h, c = cell(x[:, t], (h, c))
        else:
            h = cell(x[:, t], h)
        states.append(h)
    output = torch.stack(states[-x.size(1) :], dim=1)
    return output if batch_first else output.transpose(0, 1), ((h[None], c[None]) if mode == "LSTM" else h[None])


def gradient_flow_over(model: SequenceClassifier, batches: Iterable[Batch]) -> GradFlow:
    """`gradient_flow` summed over several (at least one) batches."""
    return functools.reduce(GradFlow.merge, (gradient_flow(model, batch) for batch in batches))


@torch.no_grad()
def lstm_gates(layer: nn.Module, inputs: Tensor) -> dict[str, Tensor]:
    """Gate activations {"f", "i", "g", "o"} (B, T, H) of an `nn.LSTM` or `ScratchLSTM` layer on
    left-aligned inputs (B, T, I), from a `ScratchLSTM` carrying the layer's weights."""
    scratch = ScratchLSTM(inputs.size(-1), layer.hidden_size).to(device=inputs.device, dtype=inputs.dtype)
    scratch.load_state_dict(layer.state_dict())
    scratch.record_gates = True
    scratch(inputs)
    return scratch.last_gates  # type: ignore[return-value]


def _keep_input(store: dict[str, Tensor], name: str):
    def hook(module: nn.Module, args: tuple, out: object) -> None:
        inputs = args[0].detach()
        store[name] = inputs if getattr(module, "batch_first", True) else inputs.transpose(0, 1)  # (B, T, I)

    return hook


def _add(a: Any, b: Any) -> Any:
    """Sum of two tensors (the shorter zero-padded) or of two dicts (by key)."""
    if isinstance(a, dict):
        return {**a, **{key: a.get(key, 0) + value for key, value in b.items()}}
    size = max(len(a), len(b))
    return F.pad(a, (0, size - len(a))) + F.pad(b, (0, size - len(b)))
