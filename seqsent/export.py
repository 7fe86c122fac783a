"""Export a checkpoint's network for serving outside seqsent: ONNX or a `torch.export` program.

    python -m seqsent.export ckpt_path=outputs/.../checkpoints/last.ckpt format=onnx out=exported/
    python -m seqsent.export ckpt_path=... format=torch_export out=exported/
    python -m seqsent.export ckpt_path=... format=pretrained out=my-model/   # seqsent.pretrained's folder

Writes into `out` (created if missing): the network, `model.onnx` (format=onnx, needs
`pip install seqsent[export]`) or `model.pt2` (format=torch_export, `torch.export.load` reads it),
taking `tokens` (batch, steps) int64 and `lengths` (batch,) int64 and giving `probabilities`: P(class 1)
(batch,) for a two-class model, else each class's probability (batch, classes); the batch size and the
number of steps are free (steps up to the checkpoint's `max_len`). Beside it: `tokenizer.json` (the
checkpoint's vocabulary) and `preprocessing.json` (max_len, padding and truncation sides, pad id,
label names, the `<unk>` id), which `seqsent.serve_onnx` reads to classify raw text without torch.
Each export is checked: the exported network must give the checkpoint's probabilities (within 1e-4)
on a batch of another size and length than the one it was traced with, else it raises (and writes
no preprocessing.json).

Recurrent encoders: `nn.LSTM`/`nn.GRU`/`nn.RNN` become ONNX's own LSTM/GRU/RNN operators
(TorchScript-based exporter), and `lstm_scratch` layers are exported as the `nn.LSTM` with their
weights (the same function); the per-row rotations that put each review's tokens first are exported
as gathers for every batch (`rotate_left` skips its no-op shortcut while exporting).
With format=torch_export, whose tracing would unroll the recurrence over the example's length, each
recurrent layer is exported as a `torch.while_loop` over the steps (`LoopedRecurrence`).
"""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from seqsent.checkpoint import label_names, load_classifier, preprocessing_of
from seqsent.data.vocab import UNK_ID
from seqsent.errors import SeqsentError, report_errors, run_or_help
from seqsent.models import ScratchLSTM, SequenceClassifier
from seqsent.pretrained import FILES as PRETRAINED_FILES
from seqsent.pretrained import run_metrics, save_pretrained

FORMATS = {"onnx": "model.onnx", "torch_export": "model.pt2"}
PREPROCESSING_FILE, TOKENIZER_FILE = "preprocessing.json", "tokenizer.json"
INPUTS, OUTPUT = ("tokens", "lengths"), "probabilities"
TOLERANCE = 1e-4
OPTIONS = {"ckpt_path", "format", "out"}
USAGE = "usage: python -m seqsent.export ckpt_path=PATH format=onnx|torch_export|pretrained out=DIR"


class Probabilities(nn.Module):
    """The classifier's network with its output turned into probabilities, as `seqsent.predict` gives them."""

    def __init__(self, model: SequenceClassifier, looped: bool = False):
        super().__init__()
        self.net = exportable(model.net, looped)
        self.to_probabilities = model.probabilities
        self.eval()  # the exporter restores the root's mode to every submodule afterwards

    def forward(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        return self.to_probabilities(self.net(tokens, lengths))


def exportable(net: nn.Module, looped: bool = False) -> nn.Module:
    """A copy of `net` in eval mode whose recurrent layers export for any length: every `ScratchLSTM`
    replaced by the `nn.LSTM` of its weights (same parameters, same function; its Python loop over the
    steps would be traced for one length only), and with `looped` every recurrent layer by a
    `LoopedRecurrence` (what `torch.export` keeps for any length)."""
    net = copy.deepcopy(net)
    for name, module in list(net.named_modules()):
        if looped and isinstance(module, (nn.RNNBase, ScratchLSTM)):
            net.set_submodule(name, LoopedRecurrence(module))
        elif isinstance(module, ScratchLSTM):
            lstm = nn.LSTM(module.input_size, module.hidden_size, batch_first=module.batch_first)
            lstm.load_state_dict(module.state_dict())
            net.set_submodule(name, lstm)
    return net.eval()


class LoopedRecurrence(nn.Module):
    """A one-layer time-major `nn.RNN` (tanh), `nn.GRU`, `nn.LSTM` or `ScratchLSTM` as a `torch.while_loop`
    over the steps, with the same weights and outputs: `torch.export` unrolls the layers' own recurrence
    over the example's length, but keeps a while loop for any length. Returns (outputs (T, B, H), None)."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        if getattr(layer, "batch_first", False) or getattr(layer, "num_layers", 1) != 1 or layer.mode == "RNN_RELU":
            raise SeqsentError(f"format=torch_export cannot export {layer}: use format=onnx")
        self.mode, self.hidden_size = layer.mode, layer.hidden_size
        # its parameters themselves, not the layer: torch.export cannot trace an `nn.RNNBase`'s attributes here
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            setattr(self, name, getattr(layer, f"{name}_l0"))

    def step(self, projected: Tensor, state: Tensor) -> Tensor:
        """The next state from this step's input projection (B, G*H) and the last state: h (B, H), for
        an LSTM h and c side by side (B, 2H)."""
        h, c = state.chunk(2, dim=1) if self.mode == "LSTM" else (state, None)
        recurrent = nn.functional.linear(h, self.weight_hh, self.bias_hh)
        if self.mode == "LSTM":
            i, f, g, o = (projected + recurrent).chunk(4, dim=1)
            c = f.sigmoid() * c + i.sigmoid() * g.tanh()
            return torch.cat([o.sigmoid() * c.tanh(), c], dim=1)
        if self.mode == "GRU":
            (xr, xz, xn), (hr, hz, hn) = projected.chunk(3, dim=1), recurrent.chunk(3, dim=1)
            r, z = (xr + hr).sigmoid(), (xz + hz).sigmoid()
            return (1 - z) * (xn + r * hn).tanh() + z * h
        return (projected + recurrent).tanh()

    def forward(self, x: Tensor) -> tuple[Tensor, None]:
        projected = nn.functional.linear(x, self.weight_ih, self.bias_ih)  # every step's at once
        size = self.hidden_size
        state = x.new_zeros(x.size(1), 2 * size if self.mode == "LSTM" else size)
        outputs = x.new_zeros(x.size(0), x.size(1), size)

        def more(t: Tensor, state: Tensor, outputs: Tensor) -> Tensor:
            return t < projected.size(0)

        def body(t: Tensor, state: Tensor, outputs: Tensor) -> tuple[Tensor, Tensor, Tensor]:
            state = self.step(projected.index_select(0, t.view(1)).squeeze(0), state)
            return t + 1, state, outputs.index_copy(0, t.view(1), state[None, :, :size])

        start = torch.zeros((), dtype=torch.long, device=x.device)
        return torch.while_loop(more, body, (start, state, outputs))[2], None


def example_batch(model: SequenceClassifier, batch: int, steps: int, seed: int) -> tuple[Tensor, Tensor]:
    """Random token ids of `model`'s vocabulary (batch, steps <= its max_len), rows padded on either side
    and one of full length, and their lengths."""
    gen = torch.Generator().manual_seed(seed)
    pad_id = model.preprocessing["pad_id"]
    steps = max(1, min(steps, model.preprocessing["max_len"]))
    lengths = torch.randint(1, steps + 1, (batch,), generator=gen)
    lengths[0] = steps
    tokens = torch.randint(pad_id + 1, model.hparams.vocab_size, (batch, steps), generator=gen)
    for row, length in enumerate(lengths.tolist()):
        pad = slice(0, steps - length) if row % 2 else slice(length, steps)  # odd rows pre-padded
        tokens[row, pad] = pad_id
    return tokens, lengths


def export_onnx(module: Probabilities, args: tuple[Tensor, Tensor], path: Path) -> None:
    """ONNX with the TorchScript-based exporter (RNN layers as ONNX's LSTM/GRU/RNN operators)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on Python values it records as constants
        torch.onnx.export(
            module, args, str(path), dynamo=False, input_names=list(INPUTS), output_names=[OUTPUT], opset_version=17,
            dynamic_axes={"tokens": {0: "batch", 1: "steps"}, "lengths": {0: "batch"}, OUTPUT: {0: "batch"}},
        )  # fmt: skip


def onnx_runner(path: Path) -> Any:
    """A function (tokens, lengths) -> probabilities running the ONNX file with onnxruntime."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda tokens, lengths: torch.from_numpy(
        session.run(None, {"tokens": tokens.numpy(), "lengths": lengths.numpy()})[0]
    )


def export_program(module: Probabilities, args: tuple[Tensor, Tensor], path: Path, max_len: int) -> Any:
    """A `torch.export` program with a free batch size and 1..max_len steps, saved to `path`."""
    batch, steps = torch.export.Dim("batch"), torch.export.Dim("steps", max=max_len)
    program = torch.export.export(module, args, dynamic_shapes=({0: batch, 1: steps}, {0: batch}))
    torch.export.save(program, str(path))
    return torch.export.load(str(path)).module()


def export(model: SequenceClassifier, fmt: str, out: str | Path) -> Path:
    """Export `model` (with its preprocessing) into the folder `out` in format `fmt`; returns the model file."""
    if fmt not in FORMATS:
        raise SeqsentError(f"format={fmt}: use one of {sorted([*FORMATS, 'pretrained'])}")
    if fmt == "onnx" and not all(importlib.util.find_spec(name) for name in ("onnx", "onnxruntime")):
        raise SeqsentError("format=onnx needs onnx and onnxruntime: pip install 'seqsent[export]'")
    prep = preprocessing_of(model, "the checkpoint")
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise SeqsentError(f"out={out} is a file: give a folder to write the exported model into")
    out.mkdir(parents=True, exist_ok=True)
    module, path = Probabilities(model, looped=fmt == "torch_export"), out / FORMATS[fmt]
    args = example_batch(model, 4, 16, seed=0)
    with torch.no_grad():
        if fmt == "onnx":
            export_onnx(module, args, path)
            runner = onnx_runner(path)
        else:
            runner = export_program(module, args, path, prep["max_len"])
        check(module, runner, example_batch(model, 7, 23, seed=1), fmt)
    (out / TOKENIZER_FILE).write_text(prep["tokenizer_json"])
    settings = {key: prep[key] for key in ("max_len", "padding", "truncation", "pad_id")} | {"unk_id": UNK_ID}
    settings |= {"num_classes": model.hparams.num_classes, "label_names": label_names(model), "output": OUTPUT}
    (out / PREPROCESSING_FILE).write_text(json.dumps(settings, indent=2) + "\n")
    return path


def check(module: nn.Module, run: Any, args: tuple[Tensor, Tensor], fmt: str) -> None:
    """Refuse an export whose network does not give the checkpoint's probabilities on `args`."""
    gap = (run(*args) - module(*args)).abs().max().item()
    if not gap <= TOLERANCE:
        raise RuntimeError(f"the {fmt} export differs from the checkpoint by {gap:.3g} (> {TOLERANCE})")


def parse_args(argv: list[str]) -> dict[str, str]:
    """`key=value` arguments, each of OPTIONS once (the last one given wins)."""
    args: dict[str, str] = {}
    for arg in argv:
        key, sep, value = arg.partition("=")
        key = key.lstrip("+")
        if not sep or key not in OPTIONS:
            raise SeqsentError(f"unknown argument {arg[:60]!r}: {USAGE}")
        args[key] = value
    if set(args) != OPTIONS:
        raise SeqsentError(f"ckpt_path=, format= and out= are required: {USAGE}")
    return args


@report_errors
def run(argv: list[str]) -> Path:
    args = parse_args(argv)
    if args["format"] == "pretrained":
        model = load_classifier(args["ckpt_path"])
        folder = save_pretrained(model, args["out"], run_metrics(args["ckpt_path"]))
        print(f"wrote {folder}/ ({', '.join(PRETRAINED_FILES)})")
        return folder
    path = export(load_classifier(args["ckpt_path"]), args["format"], args["out"])
    print(f"wrote {path} with {TOKENIZER_FILE} and {PREPROCESSING_FILE} beside it")
    return path


def main() -> None:
    """Console entry point; `--help` prints the usage above."""
    run_or_help(__doc__, run, sys.argv[1:])


if __name__ == "__main__":
    main()
