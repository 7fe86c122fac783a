"""`AWDLSTM`: the AWD-LSTM body (Merity et al. 2018), a language model's and the `awd_lstm` encoder's.

Stacked single-layer `nn.LSTM`s with locked (variational) dropout between them and weight dropout
(DropConnect) on every layer's hidden-to-hidden matrix. Weight dropout draws one mask over each
`weight_hh_l0` per forward pass in training and runs the layer's own fused kernel on the masked matrix
through `torch.func.functional_call`: the parameter stays the raw weight (its gradient comes through the
mask) under `nn.LSTM`'s own state-dict key, so a language model and a classifier share their keys. In eval
a layer runs on its parameters unchanged (on a GPU, cuDNN's flattened weights).

As an encoder (`model.encoder.name=awd_lstm`, a classifier fine-tuned from a language model, ULMFiT) it
pools the last layer's outputs over the true steps; `reverse` reads each review backwards, as a backward
language model was trained.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.func import functional_call

from seqsent.errors import SettingError
from seqsent.models.dropout import LockedDropout, drop
from seqsent.models.encoders import needs_fp32, reverse_within_lengths
from seqsent.models.pooling import POOLINGS, masked_pool

State = tuple[Tensor, Tensor]  # an LSTM layer's (h, c), each (1, B, H)


class AWDLSTM(nn.Module):
    """AWD-LSTM layers: `input_size` -> `hidden_size` (x `num_layers - 1`) -> `output_size`.

    Args:
        input_size: size of the input vectors (the embedding size).
        hidden_size: units of every layer but the last.
        num_layers: stacked unidirectional LSTM layers (>= 1).
        output_size: units of the last layer; None: `input_size` (so a language model's decoder can be
            tied to its embedding). The encoder interface's `self.output_size` is the pooled size instead.
        weight_dropout: DropConnect on each layer's hidden-to-hidden matrix, in training.
        hidden_dropout: locked dropout on the outputs of every layer but the last, in training.
        pooling: "concat" (last, max and mean over the true steps: 3 x the last layer's size), "last",
            "max" or "mean".
        reverse: read each sequence backwards (within its length): a backward language model's classifier.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int = 1150,
        num_layers: int = 3,
        output_size: int | None = None,
        weight_dropout: float = 0.5,
        hidden_dropout: float = 0.3,
        pooling: str = "concat",
        reverse: bool = False,
    ):
        super().__init__()
        check_settings(locals())
        top = output_size or input_size
        sizes = [input_size] + [hidden_size] * (num_layers - 1) + [top]
        self.layers = nn.ModuleList(nn.LSTM(sizes[i], sizes[i + 1]) for i in range(num_layers))  # time-major
        self.hidden_dropout = LockedDropout(hidden_dropout, dim=0)
        self.weight_dropout, self.pooling, self.reverse = weight_dropout, pooling, reverse
        self.output_size = top * (3 if pooling == "concat" else 1)

    def run(self, x: Tensor, hidden: list[State] | None = None) -> tuple[list[Tensor], list[State]]:
        """Run the layers over batch-first inputs (B, T, input_size), starting from `hidden` (each layer's
        (h, c), as this returns them; None: zeros). Returns every layer's outputs (B, T, H_i), each before
        the dropout after it (batch-first views of time-major tensors), and each layer's final (h, c)."""
        steps = x.transpose(0, 1)  # no copy when x is itself a view of time-major vectors
        outputs, finals = [], []
        for i, layer in enumerate(self.layers):
            if i > 0:
                steps = self.hidden_dropout(steps)
            steps, state = self._run_layer(layer, steps, None if hidden is None else hidden[i])
            outputs.append(steps.transpose(0, 1))
            finals.append(state)
        return outputs, finals

    def _run_layer(self, layer: nn.LSTM, steps: Tensor, state: State | None) -> tuple[Tensor, State]:
        """One layer over time-major `steps`, its recurrent matrix masked in training (weight dropout)."""
        masked = {}
        if self.training and self.weight_dropout > 0:
            raw = layer.weight_hh_l0
            masked["weight_hh_l0"] = drop(raw, self.weight_dropout, raw.shape)
        if needs_fp32(layer, steps):
            with torch.autocast("cpu", enabled=False):
                state = None if state is None else (state[0].float(), state[1].float())
                return functional_call(layer, masked, (steps.float(), state))
        return functional_call(layer, masked, (steps, state)) if masked else layer(steps, state)

    def states(self, x: Tensor, lengths: Tensor) -> Tensor:
        """The last layer's per-step outputs (B, T, H) for left-aligned inputs, in the order read (each
        sequence reversed within its length when `reverse`): what `pooling` summarizes."""
        if self.reverse:
            x = reverse_within_lengths(x, lengths)
        return self.run(x)[0][-1]

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        """Summarize left-aligned inputs (B, T, input_size) with true `lengths` to (B, output_size)."""
        return masked_pool(self.states(x, lengths), lengths, self.pooling)

    def layer_groups(self) -> list[nn.Module]:
        """The layers, bottom to top (discriminative learning rates, gradual unfreezing)."""
        return list(self.layers)


def check_settings(values: dict) -> None:
    """A one-line `SettingError` for the first setting out of range."""
    v = values
    if v["input_size"] < 1 or v["hidden_size"] < 1 or v["num_layers"] < 1:
        raise SettingError(
            f"input_size={v['input_size']}, hidden_size={v['hidden_size']}, num_layers={v['num_layers']}: use >= 1"
        )
    if v["output_size"] is not None and v["output_size"] < 1:
        raise SettingError(f"output_size={v['output_size']}: use >= 1, or null for the input size")
    for name in ("weight_dropout", "hidden_dropout"):
        if not 0.0 <= v[name] < 1.0:
            raise SettingError(f"{name}={v[name]}: use a probability in [0, 1)")
    if v["pooling"] not in POOLINGS:
        raise SettingError(f"pooling={v['pooling']!r}: use one of {POOLINGS}")
