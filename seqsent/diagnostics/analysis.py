"""Gradient flow over time and gate statistics of a classifier on one batch.

flow = gradient_flow(model, batch)   # a SequenceClassifier (or TextClassifierNet); batch as the data module gives
flow.mean_norms()                    # (T,): mean ||dLoss_b/dh_t|| at d = 0, 1, ... steps before the end
flow.geomean_norms()                 # (T,): their geometric mean (the typical review)
flow.gate_stats()                    # {"l0/forget_mean": ..., "l0/forget_saturated": ...} for LSTM and GRU layers

The states h_t: for a `RecurrentEncoder`, the per-step states of its top layer's forward direction (the
layer is unrolled, so the gradient is the total derivative through all later steps); for another encoder
with `states(x, lengths)` (the Transformer's token outputs), those states, the gradient reaching them
through its `pooling` (last|mean|max) of them. An encoder without per-step states (cnn, nbow) raises
`NoStepStates`. Steps are counted back from each review's last token and averaged over the reviews that
have them, only over the review's own tokens (not the padding a model with `unmasked_len` reads). The
loss is each review's own loss (BCE for two classes, cross-entropy for more) summed over the batch.
What it shows: docs/diagnostics.md.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from seqsent.analysis.runs import architecture
from seqsent.errors import SeqsentError
from seqsent.models.encoders import RecurrentEncoder
from seqsent.models.pooling import POOLINGS, masked_pool

Batch = dict[str, Tensor]
GATES = {"LSTM": {"f": "forget", "i": "input", "o": "output"}, "GRU": {"r": "reset", "z": "update"}}
SATURATION = (0.05, 0.95)  # a gate value below the first or above the second counts as saturated
TINY_NORM = 1e-45  # norms are floored here for the geometric mean: float32 gradients hold nothing smaller
CELLS: dict[str, Callable[..., nn.Module]] = {
    "RNN_TANH": nn.RNNCell,
    "RNN_RELU": functools.partial(nn.RNNCell, nonlinearity="relu"),
    "GRU": nn.GRUCell,
    "LSTM": nn.LSTMCell,
}


class NoStepStates(SeqsentError):
    """The model's encoder has no per-step states to measure gradient flow over time at."""


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
        """Per gated layer: the mean value of each gate (LSTM: forget, input, output; GRU: reset, update)
        and the saturated fraction of each."""
        return {key: value / self.gate_count[key.split("/")[0]] for key, value in self.gate_sum.items()}

    def merge(self, other: GradFlow) -> GradFlow:
        """The sums of both (batches of different widths are padded to the longer)."""
        return GradFlow(**{f.name: _add(getattr(self, f.name), getattr(other, f.name)) for f in fields(self)})


def encoder_of(model: nn.Module) -> nn.Module | None:
    """The encoder of a `SequenceClassifier` (`model.net.encoder`) or of a `TextClassifierNet`; None for
    a model without one."""
    return getattr(getattr(model, "net", model), "encoder", None)


def encoder_label(model: nn.Module) -> str:
    """The model's encoder as `seqsent.compare` names it (`lstm`, `bi-lstm`, `cnn`, a `_target_`'s class
    name), from its `encoder` hyperparameter, else the encoder's class name."""
    spec = getattr(model, "hparams", {}).get("encoder")
    encoder = encoder_of(model)
    return architecture(spec) or type(model if encoder is None else encoder).__name__


def no_step_states(model: nn.Module) -> str | None:
    """Why gradient flow over time cannot be measured on `model`, in one line; None when it can."""
    encoder = encoder_of(model)
    if encoder is None:
        return f"the {type(model).__name__} has no encoder (net.encoder): no gradient flow over time"
    what = f"the {encoder_label(model)} encoder ({type(encoder).__name__})"
    if isinstance(encoder, RecurrentEncoder):
        return None
    if not callable(getattr(encoder, "states", None)):
        return f"{what} has no per-step states (no states(x, lengths) method): no gradient flow over time"
    pooling = getattr(encoder, "pooling", None)
    if pooling not in POOLINGS:
        return (
            f"{what} has no per-step states its summary is pooled from (pooling={pooling!r}, not one of "
            f"{POOLINGS}): no gradient flow over time"
        )
    return None


def gated_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The encoder's LSTM and GRU layers (its `gated_layers()`), a `RecurrentEncoder`'s named `l0`, `l1`,
    `l0_reverse`, ..., another encoder's by their module path."""
    encoder = encoder_of(model)
    if not callable(getattr(encoder, "gated_layers", None)):
        return {}
    paths = {id(module): path for path, module in encoder.named_modules()}
    layers = {_layer_name(paths.get(id(layer), str(k))): layer for k, layer in enumerate(encoder.gated_layers())}
    return {name: layer for name, layer in layers.items() if getattr(layer, "mode", "") in GATES}


def _layer_name(path: str) -> str:
    """`forward_layers.1` -> `l1`, `backward_layers.1` -> `l1_reverse`; any other path as it is."""
    kind, _, index = path.partition(".")
    if kind in ("forward_layers", "backward_layers") and index.isdigit():
        return f"l{index}" + ("_reverse" if kind == "backward_layers" else "")
    return path


def gradient_flow(model: nn.Module, batch: Batch) -> GradFlow:
    """Per-step gradient norms and gate sums of one batch, in eval mode.

    A recurrent encoder's fused kernels hide the states that feed the recurrence, so its top forward
    layer is unrolled step by step with its own parameters and the gradient is taken with respect to
    each step's state h_t: the total derivative, through all later steps. Another encoder's summary is
    recomputed as the pooling of its `states()`, and the gradient is taken with respect to those.
    Leaves the model as it was (mode restored, no `.grad` written); cuDNN is off (its RNN backward
    needs train mode). Raises `NoStepStates` for an encoder without per-step states.
    """
    problem = no_step_states(model)
    if problem is not None:
        raise NoStepStates(problem)
    encoder = encoder_of(model)
    device = next(model.parameters()).device
    tokens, lengths, labels = (batch[key].to(device) for key in ("tokens", "lengths", "labels"))
    states: list[Tensor] = []
    inputs: dict[str, Tensor] = {}
    seen: list[Tensor] = []  # the lengths the encoder is given (not the reviews' own with `unmasked_len`)
    layers = gated_layers(model)
    hooks = [
        encoder.register_forward_pre_hook(lambda module, args: seen.append(args[1])),
        _hook_states(encoder, states),
        *(layer.register_forward_hook(_keep_input(inputs, name)) for name, layer in layers.items()),
    ]
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad(), torch.backends.cudnn.flags(enabled=False):
            logits = model(tokens, lengths)
            if logits.dim() == 2:  # one logit per class
                loss = F.cross_entropy(logits, labels.long(), reduction="sum")
            else:
                loss = F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype), reduction="sum")
            grads = torch.autograd.grad(loss, states, allow_unused=True, materialize_grads=True)
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    # (B, T) per-review norms, left-aligned steps; float64: squares of float32 gradients far back underflow
    norms = torch.cat([g.detach().double().norm(dim=-1).view(len(tokens), -1) for g in grads], dim=1)
    # each review's last token is at step end_b; its own tokens are the n_b steps up to it
    end = seen[0].to(device) - 1
    n = torch.minimum(lengths, end + 1)
    distance = torch.arange(norms.size(1), device=device).unsqueeze(0)  # (1, D)
    valid = distance < n.unsqueeze(1)
    by_distance = norms.gather(1, (end.unsqueeze(1) - distance).clamp(min=0))
    logs = by_distance.clamp(min=TINY_NORM).log() * valid
    flow = GradFlow((by_distance * valid).sum(0).cpu(), valid.sum(0).long().cpu(), logs.sum(0).cpu())
    low, high = SATURATION
    for name, inp in inputs.items():
        step = torch.arange(inp.size(1), device=device).unsqueeze(0)  # (1, T)
        if name.endswith("_reverse"):  # reversed within the encoder's lengths: the review comes first
            mask = step < n.unsqueeze(1)
        else:
            mask = (step <= end.unsqueeze(1)) & (step > (end - n).unsqueeze(1))
        layer = layers[name]
        activations = gate_values(layer, inp)
        for key, label in GATES[layer.mode].items():
            values = activations[key][mask].double()  # (the reviews' own steps, H)
            flow.gate_sum[f"{name}/{label}_mean"] = float(values.sum())
            flow.gate_sum[f"{name}/{label}_saturated"] = float(((values < low) | (values > high)).sum())
        flow.gate_count[name] = int(mask.sum()) * layer.hidden_size
    return flow


def _hook_states(encoder: nn.Module, states: list[Tensor]) -> RemovableHandle:
    """A forward hook that puts the per-step states into the graph and into `states`."""
    if isinstance(encoder, RecurrentEncoder):
        top = encoder.forward_layers[-1]
        return top.register_forward_hook(lambda module, args, out: unroll(module, args[0], states))
    return encoder.register_forward_hook(lambda module, args, out: pooled_states(module, args, out, states))


def pooled_states(encoder: nn.Module, args: tuple, out: Tensor, states: list[Tensor]) -> Tensor:
    """The encoder's summary recomputed as `masked_pool` of its `states(x, lengths)` by its `pooling`
    (appended to `states`); `NoStepStates` when that is not the summary its forward returned."""
    x, lengths = args[:2]
    step_states = encoder.states(x, lengths)
    summary = masked_pool(step_states, lengths, encoder.pooling)
    if summary.shape != out.shape or not torch.allclose(summary, out, rtol=1e-4, atol=1e-5):
        raise NoStepStates(
            f"the {type(encoder).__name__} encoder's output is not its states() pooled by pooling="
            f"{encoder.pooling!r}: no gradient flow over time"
        )
    states.append(step_states)
    return summary


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


def gradient_flow_over(model: nn.Module, batches: Iterable[Batch]) -> GradFlow:
    """`gradient_flow` summed over several (at least one) batches."""
    return functools.reduce(GradFlow.merge, (gradient_flow(model, batch) for batch in batches))


@torch.no_grad()
def gate_values(layer: nn.Module, inputs: Tensor) -> dict[str, Tensor]:
    """Gate activations (B, T, H) of a one-layer `nn.LSTM`/`ScratchLSTM` ({"i", "f", "g", "o"}) or `nn.GRU`
    ({"r", "z"}) on left-aligned inputs (B, T, I): the layer's own outputs give each step's previous
    state, from which the gates are computed with its weights."""
    batch_first = getattr(layer, "batch_first", True)
    out = layer(inputs if batch_first else inputs.transpose(0, 1))[0]
    h = out if batch_first else out.transpose(0, 1)
    previous = F.pad(h, (0, 0, 1, 0))[:, :-1]  # h_{t-1}, zero before the first step
    from_input = F.linear(inputs, layer.weight_ih_l0, layer.bias_ih_l0)
    from_state = F.linear(previous, layer.weight_hh_l0, layer.bias_hh_l0)
    if layer.mode == "LSTM":  # PyTorch's gate order: i, f, g, o
        i, f, g, o = (from_input + from_state).chunk(4, dim=-1)
        return {"i": i.sigmoid(), "f": f.sigmoid(), "g": g.tanh(), "o": o.sigmoid()}
    (r_in, z_in, _), (r_state, z_state, _) = from_input.chunk(3, dim=-1), from_state.chunk(3, dim=-1)
    return {"r": (r_in + r_state).sigmoid(), "z": (z_in + z_state).sigmoid()}


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
