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


class ScratchLSTM(nn.Module):
    """A single LSTM layer from its equations; same parameters, init and outputs as `nn.LSTM`."""

    mode = "LSTM"

    def __init__(self, input_size: int, hidden_size: int, batch_first: bool = True):
        super().__init__()
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
        zeros = x.new_zeros(x.size(0), self.hidden_size)
        h, c = (zeros, zeros) if hx is None else (hx[0][0], hx[1][0])
        projected = torch.addmm(self.bias_ih_l0 + self.bias_hh_l0, x.flatten(0, 1), self.weight_ih_l0.t())
        projected = projected.view(x.size(0), x.size(1), -1)
        outputs, gates = [], []
        for t in range(x.size(1)):
            i, f, g, o = (projected[:, t] + h @ self.weight_hh_l0.t()).chunk(4, dim=1)
            i, f, g, o = i.sigmoid(), f.sigmoid(), g.tanh(), o.sigmoid()
            c = f * c + i * g
            h = o * c.tanh()
            outputs.append(h)
            if self.record_gates:
                gates.append((i.detach(), f.detach(), g.detach(), o.detach()))
        if self.record_gates:
            self.last_gates = {name: torch.stack(values, dim=1) for name, values in zip("ifgo", zip(*gates))}
        output = torch.stack(outputs, dim=1)
        return (output if self.batch_first else output.transpose(0, 1)), (h[None], c[None])

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, batch_first={self.batch_first}"
