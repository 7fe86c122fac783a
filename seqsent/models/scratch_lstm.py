"""`ScratchLSTM`: a one-layer LSTM written gate by gate, a drop-in for `nn.LSTM(batch_first=True)`.

    f_t = sigmoid(W_f x_t + U_f h_{t-1} + b_f)      forget gate
    i_t = sigmoid(W_i x_t + U_i h_{t-1} + b_i)      input gate
    g_t = tanh(W_g x_t + U_g h_{t-1} + b_g)         candidate C~_t
    o_t = sigmoid(W_o x_t + U_o h_{t-1} + b_o)      output gate
    C_t = f_t * C_{t-1} + i_t * g_t
    h_t = o_t * tanh(C_t)

Parameters are named and stacked like `nn.LSTM`'s single layer (`weight_ih_l0` (4H, I),
`weight_hh_l0` (4H, H), `bias_ih_l0`, `bias_hh_l0`, gate order i, f, g, o), so state dicts and
checkpoints move between the two. The input projections of all steps are one matmul; the
recurrence is one matmul per step. Set `record_gates = True` to keep the gate activations of the
next forward pass in `last_gates` ({"f", "i", "g", "o"}: (B, T, H) each, detached).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from seqsent.errors import SettingError


class ScratchLSTM(nn.Module):
    """A single LSTM layer from its equations; same parameters, init and outputs as `nn.LSTM`."""

    mode = "LSTM"

    def __init__(self, input_size: int, hidden_size: int, batch_first: bool = True):
        super().__init__()
        if input_size < 1 or hidden_size < 1:
            raise SettingError("input_size and hidden_size must be >= 1")
        self.input_size, self.hidden_size, self.batch_first = input_size, hidden_size, batch_first
        self.weight_ih_l0 = nn.Parameter(torch.empty(4 * hidden_size, input_size))
        self.weight_hh_l0 = nn.Parameter(torch.empty(4 * hidden_size, hidden_size))
        self.bias_ih_l0 = nn.Parameter(torch.empty(4 * hidden_size))
        self.bias_hh_l0 = nn.Parameter(torch.empty(4 * hidden_size))
        self.record_gates = False
        self.last_gates: dict[str, Tensor] | None = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's RNN default: every weight and bias uniform(-1/sqrt(H), 1/sqrt(H))."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for param in self.parameters():
            nn.init.uniform_(param, -bound, bound)

    def forward(self, x: Tensor, hx: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """(B, T, I) (or (T, B, I) without `batch_first`) -> (output (B, T, H), (h_n, c_n) (1, B, H))."""
        if not self.batch_first:
            x = x.transpose(0, 1)
        batch, steps, _ = x.shape
        if hx is None:
            h = x.new_zeros(batch, self.hidden_size)
            c = x.new_zeros(batch, self.hidden_size)
        else:
            h, c = hx[0].squeeze(0), hx[1].squeeze(0)
        projected = torch.addmm(self.bias_ih_l0 + self.bias_hh_l0, x.reshape(-1, x.size(-1)), self.weight_ih_l0.t())
        projected = projected.view(batch, steps, 4 * self.hidden_size)
        w_hh = self.weight_hh_l0.t()
        outputs: list[Tensor] = []
        gates: dict[str, list[Tensor]] = {"i": [], "f": [], "g": [], "o": []}
        for t in range(steps):
            i, f, g, o = (projected[:, t] + h @ w_hh).chunk(4, dim=1)
            i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
            c = f * c + i * g
            h = o * torch.tanh(c)
            outputs.append(h)
            if self.record_gates:
                for name, value in zip("ifgo", (i, f, g, o)):
                    gates[name].append(value.detach())
        if self.record_gates:
            self.last_gates = {name: _stack(values, batch, self.hidden_size, x) for name, values in gates.items()}
        output = _stack(outputs, batch, self.hidden_size, x)
        if not self.batch_first:
            output = output.transpose(0, 1)
        return output, (h.unsqueeze(0), c.unsqueeze(0))

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, batch_first={self.batch_first}"


def _stack(steps: list[Tensor], batch: int, hidden: int, like: Tensor) -> Tensor:
    """(B, T, H) from T tensors (B, H); an empty (B, 0, H) tensor for an empty sequence."""
    return torch.stack(steps, dim=1) if steps else like.new_zeros(batch, 0, hidden)
