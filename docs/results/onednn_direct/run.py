"""Is PyTorch's wrapper around oneDNN's LSTM what keeps the CPU step well below the matmul rate?

Calls oneDNN's LSTM primitive directly (lstm_binding.cpp through ctypes, primitives built once and
reused) and compares it with `nn.LSTM` on the benchmark's layer step: forward and backward over a
random time-major (200, 32, 128) input, seed sizes. Checks that outputs and all gradients agree, then
times the two alternately in one process (medians). Prints JSON.

    pip download --no-deps -d /tmp/onednn onednn-cpu-gomp==2023.2.0 onednn-devel-cpu-gomp==2023.2.0
    python docs/results/onednn_direct/run.py --wheels /tmp/onednn

Needs g++. Not part of seqsent: a measured negative result (README.md beside this file, docs/speed.md).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import subprocess
import time
import zipfile
from pathlib import Path

import torch

from seqsent.allocator import keep_freed_memory

HERE = Path(__file__).resolve().parent


def build(wheels: Path, work: Path) -> tuple[ctypes.CDLL, str]:
    """Unpack the oneDNN (CPU, GNU OpenMP) wheels into `work`, compile the binding against them; (library, version)."""
    for wheel in sorted(wheels.glob("onednn*cpu_gomp*.whl")):
        with zipfile.ZipFile(wheel) as z:
            z.extractall(work)
    include = next(work.glob("*/data/include/oneapi")).parent
    lib = next(work.glob("*/data/lib/libdnnl.so")).parent
    out = work / "liblstm_binding.so"
    cmd = ["g++", "-O2", "-std=c++17", "-shared", "-fPIC", str(HERE / "lstm_binding.cpp"), f"-I{include}"]
    subprocess.run([*cmd, f"-L{lib}", "-ldnnl", f"-Wl,-rpath,{lib}", "-o", str(out)], check=True)
    version = next(lib.glob("libdnnl.so.*.*")).name.removeprefix("libdnnl.so.")
    return ctypes.CDLL(str(out)), version


class DirectLSTM(torch.autograd.Function):
    """One unidirectional LSTM layer, zero initial state, through the binding."""

    lib: ctypes.CDLL
    handles: dict[tuple[int, ...], tuple[int, int]] = {}

    @classmethod
    def handle(cls, *shape: int) -> tuple[int, int]:
        if shape not in cls.handles:
            ws, impl = ctypes.c_long(), ctypes.create_string_buffer(256)
            ptr = cls.lib.lb_create(*shape, ctypes.byref(ws), impl, 256)
            if not ptr:
                raise RuntimeError("oneDNN could not create the LSTM primitives")
            cls.handles[shape] = (ptr, ws.value)
        return cls.handles[shape]

    @staticmethod
    def forward(ctx, x, w_ih, w_hh, b_ih, b_hh):  # noqa: ANN001, ANN205
        t, b, c = x.shape
        h = w_hh.shape[1]
        ptr, ws_bytes = DirectLSTM.handle(t, b, c, h)
        x, bias = x.contiguous(), b_ih + b_hh
        state = x.new_zeros(b, h)
        y, h_t, c_t = x.new_empty(t, b, h), x.new_empty(b, h), x.new_empty(b, h)
        ws = torch.empty(ws_bytes, dtype=torch.uint8)
        w_ig = w_ih.view(4, h, c).permute(2, 0, 1).contiguous()
        w_hh_ig = w_hh.view(4, h, h).permute(2, 0, 1).contiguous()
        args = (x, state, state, w_ig, w_hh_ig, bias, y, h_t, c_t, ws)
        DirectLSTM.lib.lb_forward(ctypes.c_void_p(ptr), *(ctypes.c_void_p(a.data_ptr()) for a in args))
        ctx.save_for_backward(x, state, w_ih, w_hh, bias, y, h_t, c_t, ws)
        ctx.ptr = ptr
        return y

    @staticmethod
    def backward(ctx, dy):  # noqa: ANN001, ANN205
        x, state, w_ih, w_hh, bias, y, h_t, c_t, ws = ctx.saved_tensors
        t, b, c = x.shape
        h = w_hh.shape[1]
        dy = dy.contiguous()
        zero = state.new_zeros(b, h)
        dx, dh0, dc0 = torch.empty_like(x), torch.empty_like(state), torch.empty_like(state)
        dw_ig, dw_hh_ig, dbias = x.new_zeros(c, 4, h), x.new_zeros(h, 4, h), torch.zeros_like(bias)
        args = (x, state, state, w_ih, w_hh, bias, y, h_t, c_t, ws, dy, zero, zero, dx, dh0, dc0)
        args = (*args, dw_ig, dw_hh_ig, dbias)
        DirectLSTM.lib.lb_backward(ctypes.c_void_p(ctx.ptr), *(ctypes.c_void_p(a.data_ptr()) for a in args))
        return dx, dw_ig.permute(1, 2, 0).reshape(4 * h, c), dw_hh_ig.permute(1, 2, 0).reshape(4 * h, h), dbias, dbias


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheels", type=Path, required=True, help="folder with the two downloaded oneDNN wheels")
    parser.add_argument("--work", type=Path, default=Path("/tmp/onednn_direct"), help="build folder")
    parser.add_argument("--steps", type=int, default=200, help="timed steps per variant")
    args = parser.parse_args()
    keep_freed_memory()
    args.work.mkdir(parents=True, exist_ok=True)
    lib, version = build(args.wheels, args.work)
    lib.lb_create.restype = ctypes.c_void_p
    DirectLSTM.lib = lib
    t, b, c, h = 200, 32, 128, 128
    torch.manual_seed(0)
    layer = torch.nn.LSTM(c, h)
    x = torch.randn(t, b, c, requires_grad=True)
    weights = (layer.weight_ih_l0, layer.weight_hh_l0, layer.bias_ih_l0, layer.bias_hh_l0)
    variants = {"nn_lstm": lambda: layer(x)[0], "direct": lambda: DirectLSTM.apply(x, *weights)}

    grad_out = torch.randn(t, b, h)
    results = {}
    for name, run in variants.items():
        x.grad = None
        layer.zero_grad()
        out = run()
        (out * grad_out).sum().backward()
        results[name] = [out.detach().clone(), x.grad.clone(), *(p.grad.clone() for p in weights)]
    max_diff = max((a - d).abs().max().item() for a, d in zip(*results.values()))

    times: dict[str, list[float]] = {name: [] for name in variants}
    for i in range(args.steps + 20):
        for name, run in variants.items():
            start = time.perf_counter()
            run()[-1].sum().backward()
            if i >= 20:
                times[name].append(time.perf_counter() - start)
    impl, inference, training = (ctypes.create_string_buffer(256) for _ in range(3))
    lib.lb_create(t, b, c, h, ctypes.byref(ctypes.c_long()), impl, 256)
    lib.lb_any_layout_impl(t, b, c, h, 0, inference, 256)
    lib.lb_any_layout_impl(t, b, c, h, 1, training, 256)
    median = {name: round(1000 * sorted(v)[len(v) // 2], 2) for name, v in times.items()}
    print(
        json.dumps(
            {
                "onednn_version": version,
                "torch_version": torch.__version__,
                "threads": torch.get_num_threads(),
                "impl_fwd_training_bwd": impl.value.decode(),
                "impl_any_layout_forward_inference": inference.value.decode(),
                "impl_any_layout_forward_training": training.value.decode(),
                "max_abs_diff_outputs_and_grads": max_diff,
                "layer_step_ms_median": median,
                "direct_over_nn_lstm": round(median["direct"] / median["nn_lstm"], 4),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
