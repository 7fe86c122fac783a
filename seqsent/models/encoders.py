"""Recurrent sequence encoders whose summary never sees padding.

`RecurrentEncoder` takes padded inputs with true lengths and the side the padding is on
(`padding="post"`, the encoder interface's left-aligned inputs, or `"pre"`, a DataModule's default),
and left-aligns them first (valid steps first, padding after). A forward RNN is causal, so its
output at step `length - 1` is exactly what the review alone would give. The backward direction of
a bidirectional layer runs a forward RNN over each review reversed within its own length, which is
again left-aligned. This keeps the fast padded kernels (cuDNN, oneDNN) and avoids `PackedSequence`,
which is many times slower on CPU. The summary pools the outputs with `masked_pool` (seqsent.models.pooling).

The layers run time-major (T, B, ...), the layout the oneDNN and cuDNN kernels compute in: a
batch-first input that is a transposed view of a time-major tensor (as `TextClassifierNet` embeds
its tokens) reaches them without a copy, and the gradients come back without one (docs/speed.md).

Under CPU autocast (bf16-mixed) on a processor whose oneDNN has no low-precision LSTM kernel (without
AVX512 it raises "could not create a primitive descriptor"), the LSTM layers run in fp32 instead.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor, nn

from seqsent.errors import SettingError
from seqsent.models.dropout import Dropout
from seqsent.models.pooling import POOLINGS, masked_pool
from seqsent.models.scratch_lstm import ScratchLSTM

CELLS: dict[str, type[nn.Module]] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU, "lstm_scratch": ScratchLSTM}
PADDINGS = ("pre", "post")  # the side the padding is on, as `IMDBDataModule(padding=...)` puts it
INITS = ("torch", "keras", "keras_per_gate")
RECURRENT_POOLINGS = tuple(p for p in POOLINGS if p != "concat")  # concat: the awd_lstm encoder's


def keras_init_(rnn: nn.Module, per_gate: bool = False) -> None:
    """Keras' recurrent defaults: a Glorot-uniform input kernel and an orthogonal recurrent kernel,
    each over the gates' stacked matrix as Keras makes it (the recurrent (G*H, H) matrix gets
    orthonormal columns), zero biases, and for LSTMs a forget-gate bias of 1 (`unit_forget_bias`).
    Gates are stacked in PyTorch's order (LSTM: i, f, g, o; GRU: r, z, n), which is Keras' too.

    `per_gate=True` (`init=keras_per_gate`, the default recipe's) initializes each gate's block on
    its own instead: input weights sqrt((in + G*H) / (in + H)) times wider and every recurrent block
    orthogonal. The two differ only for LSTMs and GRUs (a plain RNN has one gate)."""
    gates = rnn.weight_ih_l0.size(0) // rnn.hidden_size if per_gate else 1
    for name, param in rnn.named_parameters():
        if name.startswith("bias"):
            nn.init.zeros_(param)
            if getattr(rnn, "mode", "") == "LSTM" and name.startswith("bias_ih"):
                param.data[rnn.hidden_size : 2 * rnn.hidden_size] = 1.0
            continue
        for block in param.data.chunk(gates, dim=0):
            if name.startswith("weight_hh"):
                nn.init.orthogonal_(block)
            else:
                nn.init.xavier_uniform_(block)


def reverse_within_lengths(x: Tensor, lengths: Tensor, dim: int = 1) -> Tensor:
    """Reverse each row's first `lengths[b]` steps along the time axis `dim` (1: (B, T, ...), 0: (T, B, ...));
    padding stays put."""
    steps = torch.arange(x.size(dim), device=x.device).unsqueeze(1 - dim)
    lengths = lengths.to(x.device).unsqueeze(dim)
    index = torch.where(steps < lengths, lengths - 1 - steps, steps)
    return x.gather(dim, index.view(*index.shape, *([1] * (x.dim() - 2))).expand_as(x))


def rotate_left(x: Tensor, shift: Tensor, dim: int = 1) -> Tensor:
    """Rotate each row b of `x` left by `shift[b]` steps along the time axis `dim` (1: (B, T, ...),
    0: (T, B, ...)). On the CPU a batch with nothing to move comes back as it is; on other devices
    the gather always runs, since asking first would make the host wait for the device every step
    (and would break CUDA graph capture), and so it does while traced into a graph (`tracing`)."""
    if x.device.type == "cpu" and not tracing() and not bool(shift.any()):
        return x
    steps = torch.arange(x.size(dim), device=x.device).unsqueeze(1 - dim)
    index = (steps + shift.to(x.device).unsqueeze(dim)) % x.size(dim)
    return x.gather(dim, index.view(*index.shape, *([1] * (x.dim() - 2))).expand_as(x))


def tracing() -> bool:
    """Whether this forward pass is being traced into a graph (`torch.export` or `torch.compile`, or the
    TorchScript tracer of `torch.onnx.export(dynamo=False)`, as `seqsent.export` does), which must not
    depend on one batch's values."""
    return torch.compiler.is_compiling() or torch.jit.is_tracing()


def left_align(tokens: Tensor, lengths: Tensor, pad_id: int = 0) -> Tensor:
    """Move each row's `lengths[b]` valid tokens to the front, whichever side was padded: the last
    `lengths[b]` when the row starts with padding (`pre`), else the first (`post`)."""
    t = tokens.size(1)
    lengths = lengths.to(tokens.device)
    return rotate_left(tokens, (t - lengths) * (tokens[:, 0] == pad_id).long() * (lengths < t).long())


def unmasked(tokens: Tensor, lengths: Tensor, length: int, pad_id: int = 0) -> tuple[Tensor, Tensor]:
    """Keras' Embedding without `mask_zero`: each review's valid tokens (either padding side)
    pre-padded to `length` steps (its last `length` tokens when longer), with every length set to
    `length`, so the layers read the padding as ordinary input. Returns (tokens (B, length), lengths)."""
    tokens = left_align(tokens, lengths, pad_id)
    lengths = lengths.to(tokens.device)
    width = max(tokens.size(1), length)
    if tokens.size(1) < width:
        tokens = nn.functional.pad(tokens, (0, width - tokens.size(1)), value=pad_id)
    shift = (width - lengths).unsqueeze(1)  # rotate each row right until its last token ends the row
    index = (torch.arange(width, device=tokens.device).unsqueeze(0) - shift) % width
    return tokens.gather(1, index)[:, width - length :], torch.full_like(lengths, length)


def run_layer(layer: nn.Module, x: Tensor) -> Tensor:
    """`layer(x)[0]`; an `nn.LSTM` under CPU autocast runs in fp32 where oneDNN has no kernel for the
    autocast dtype (`needs_fp32`)."""
    if needs_fp32(layer, x):
        with torch.autocast("cpu", enabled=False):
            return layer(x.float())[0]
    return layer(x)[0]


def needs_fp32(layer: nn.Module, x: Tensor) -> bool:
    """Whether `layer` must run in fp32 on `x`: an `nn.LSTM` under CPU autocast where oneDNN has no kernel
    for the autocast dtype (see the module docstring)."""
    return (
        isinstance(layer, nn.LSTM)
        and x.device.type == "cpu"
        and torch.is_autocast_enabled("cpu")
        and not cpu_lstm_autocast_works(torch.get_autocast_dtype("cpu"))
    )


@functools.cache
def cpu_lstm_autocast_works(dtype: torch.dtype) -> bool:
    """Whether an `nn.LSTM` trains (forward and backward) under CPU autocast to `dtype` here, tried once
    on a tiny input without touching the global random state (a seeded run draws the same numbers
    whether or not this ran first in its process)."""
    try:
        with torch.random.fork_rng(devices=[]), torch.enable_grad(), torch.inference_mode(False):
            x = torch.zeros(1, 1, 2, requires_grad=True)
            with torch.autocast("cpu", dtype=dtype):
                out = nn.LSTM(2, 2)(x)[0]
            out.float().sum().backward()
    except RuntimeError:
        return False
    return True


class RecurrentEncoder(nn.Module):
    """Stacked `rnn` (tanh), `lstm` or `gru` layers, optionally bidirectional, with a pooled summary: the
    registry's `rnn`, `lstm`, `gru` and `lstm_scratch` encoders (`seqsent.models.registry`).

    Args:
        cell: "rnn", "lstm", "gru" or "lstm_scratch" (`ScratchLSTM`, the LSTM written gate by gate).
        input_size: size of the input vectors (the embedding size).
        hidden_size: hidden units per direction.
        num_layers: stacked layers; `dropout` is applied between them.
        bidirectional: add a right-to-left direction to every layer.
        dropout: dropout between layers.
        pooling: "last" (the output at each review's true last step; for the backward direction
            its state after reading the whole review), "mean" or "max" over valid steps.
        init: "torch" (PyTorch's defaults), "keras" or "keras_per_gate" (see `keras_init_`).
        single_bias: hold each layer's second bias (`bias_hh`) at zero, untrained, so a gate has one
            trained bias as in Keras (PyTorch's two biases take two optimizer steps' worth of change).
    """

    def __init__(
        self,
        cell: str = "lstm",
        input_size: int = 128,
        hidden_size: int = 128,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        pooling: str = "last",
        init: str = "torch",
        single_bias: bool = False,
    ):
        super().__init__()
        if cell not in CELLS:
            raise SettingError(f"unknown cell {cell!r}: use one of {sorted(CELLS)}")
        if pooling not in RECURRENT_POOLINGS:
            raise SettingError(f"unknown pooling {pooling!r}: use one of {RECURRENT_POOLINGS}")
        if init not in INITS:
            raise SettingError(f"unknown init {init!r}: use one of {INITS}")
        if num_layers < 1 or hidden_size < 1 or input_size < 1:
            raise SettingError("input_size, hidden_size and num_layers must be >= 1")
        if not 0.0 <= dropout < 1.0:
            raise SettingError(f"dropout={dropout}: use a value in [0, 1)")
        self.cell, self.pooling, self.bidirectional = cell, pooling, bidirectional
        self.hidden_size, self.num_layers = hidden_size, num_layers
        directions = 2 if bidirectional else 1
        rnn_cls = CELLS[cell]
        sizes = [input_size] + [hidden_size * directions] * (num_layers - 1)
        self.forward_layers = nn.ModuleList(rnn_cls(s, hidden_size, batch_first=False) for s in sizes)
        self.backward_layers = (
            nn.ModuleList(rnn_cls(s, hidden_size, batch_first=False) for s in sizes) if bidirectional else None
        )
        self.dropout = Dropout(dropout)
        if init in ("keras", "keras_per_gate"):
            for layer in self.recurrent_layers():
                keras_init_(layer, per_gate=init == "keras_per_gate")
        if single_bias:  # one trained bias per gate, as Keras' layers have: bias_hh held at zero
            for layer in self.recurrent_layers():
                for name, param in layer.named_parameters():
                    if name.startswith("bias_hh"):
                        nn.init.zeros_(param)
                        param.requires_grad_(False)

    def recurrent_layers(self) -> list[nn.RNNBase]:
        return list(self.forward_layers) + (list(self.backward_layers) if self.backward_layers is not None else [])

    def layer_groups(self) -> list[nn.Module]:
        """Each layer, both its directions, bottom to top (discriminative learning rates, gradual unfreezing)."""
        directions = [self.forward_layers] + ([self.backward_layers] if self.backward_layers is not None else [])
        return [nn.ModuleList(layer) for layer in zip(*directions)]

    @property
    def output_size(self) -> int:
        return self.hidden_size * (2 if self.bidirectional else 1)

    def sequence(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor | None]:
        """Per-step outputs of the top layer for left-aligned (post-padded) inputs (B, T, input_size):
        (forward (B, T, H), backward in reversed order or None), as batch-first views of the
        time-major outputs."""
        fwd, bwd_rev = self.sequence_time_major(x.transpose(0, 1), lengths)
        return fwd.transpose(0, 1), (bwd_rev.transpose(0, 1) if bwd_rev is not None else None)

    def sequence_time_major(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor | None]:
        """`sequence` on and to time-major tensors (T, B, ...)."""
        fwd_out, bwd_rev = x, None
        for i in range(self.num_layers):
            if i > 0:  # masks drawn batch-first, as they were before the layers ran time-major
                fwd_out = self.dropout(fwd_out.transpose(0, 1)).transpose(0, 1)
            inp = fwd_out
            fwd_out = run_layer(self.forward_layers[i], inp)
            if self.backward_layers is not None:
                bwd_rev = run_layer(self.backward_layers[i], reverse_within_lengths(inp, lengths, dim=0))
                if i < self.num_layers - 1:
                    fwd_out = torch.cat([fwd_out, reverse_within_lengths(bwd_rev, lengths, dim=0)], dim=-1)
        return fwd_out, bwd_rev

    def states(self, x: Tensor, lengths: Tensor) -> Tensor:
        """Per-step outputs of the top layer (B, T, output_size) for left-aligned inputs, both directions
        in reading order: what `pooling` "mean" and "max" summarize."""
        fwd, bwd_rev = self.sequence_time_major(x.transpose(0, 1), lengths.to(x.device))
        return self._joined(fwd, bwd_rev, lengths.to(x.device)).transpose(0, 1)

    def gated_layers(self) -> list[nn.Module]:
        """The LSTM and GRU layers (`nn.LSTM`, `nn.GRU`, `ScratchLSTM`), forward then backward; none for `rnn`."""
        return [] if self.cell == "rnn" else self.recurrent_layers()

    def forward(self, x: Tensor, lengths: Tensor, padding: str = "post") -> Tensor:
        """Summarize padded inputs (B, T, input_size) with true `lengths` to (B, output_size).

        `padding` is the side the padding is on: "post" (valid steps first, i.e. left-aligned, the
        encoder interface: nothing to move) or "pre" (valid steps last, a DataModule's default). Give
        your data's side, e.g. `encoder(x, batch["lengths"], padding=datamodule.padding)`.
        """
        if padding not in PADDINGS:
            raise ValueError(f"padding={padding!r}: use one of {PADDINGS}, the side the padding is on")
        steps = x.transpose(0, 1)
        lengths = lengths.to(x.device)
        if padding == "pre":
            steps = rotate_left(steps, x.size(1) - lengths, dim=0)
        fwd, bwd_rev = self.sequence_time_major(steps, lengths)
        if self.pooling == "last":  # backward: its state after reading the whole review (reversed order's last)
            parts = [fwd] + ([bwd_rev] if bwd_rev is not None else [])
            return torch.cat([masked_pool(part, lengths, "last", dim=0) for part in parts], dim=-1)
        return masked_pool(self._joined(fwd, bwd_rev, lengths), lengths, self.pooling, dim=0)

    @staticmethod
    def _joined(fwd: Tensor, bwd_rev: Tensor | None, lengths: Tensor) -> Tensor:
        """Time-major top-layer outputs with the backward direction put back in reading order."""
        return fwd if bwd_rev is None else torch.cat([fwd, reverse_within_lengths(bwd_rev, lengths, dim=0)], dim=-1)
