"""GPU paths: every encoder (cuDNN cells, convolutions, fused attention) against the CPU kernels, padding
invariance on the GPU, bf16 training through Hydra's `trainer=gpu` for every encoder, and a GPU
checkpoint read back on the CPU. Every test skips without CUDA."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import TINY_BIGRAMS, run_module

from seqsent.checkpoint import load_classifier
from seqsent.data.batching import pad
from seqsent.models import RecurrentEncoder, SequenceClassifier

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

SMALL = [
    "data=synthetic",
    "data.n_train=480",
    "data.n_test=160",
    "data.vocab_size=300",
    "data.batch_size=32",
    TINY_BIGRAMS,
    "model.embed_dim=32",
    "trainer.max_epochs=2",
]


def model_pair(encoder: dict) -> tuple[SequenceClassifier, SequenceClassifier]:
    torch.manual_seed(0)
    cpu = SequenceClassifier(vocab_size=60, embed_dim=16, encoder=encoder)
    gpu = SequenceClassifier(**dict(cpu.hparams))
    gpu.load_state_dict(cpu.state_dict())
    return cpu, gpu.cuda()  # training mode (cuDNN backward needs it); no dropout, so deterministic


def recurrent(cell: str, bi: bool, pooling: str) -> dict:
    return {"name": cell, "hidden_size": 12, "num_layers": 2, "bidirectional": bi, "pooling": pooling}


ENCODER_SPECS = [
    *(
        recurrent(c, bi, p)
        for c in ("rnn", "lstm", "gru", "lstm_scratch")
        for bi, p in ((False, "last"), (True, "max"), (True, "mean"))
    ),
    {"name": "cnn", "widths": [2, 3, 5], "channels": 6},
    *(
        {
            "name": "transformer",
            "d_model": 16,
            "num_heads": 2,
            "ff_size": 24,
            "dropout": 0.0,
            "pooling": p,
            "positions": pos,
        }
        for p, pos in (("mean", "learned"), ("cls", "sinusoidal"))
    ),
    {"name": "nbow", "pooling": "mean_max"},
]


@pytest.mark.parametrize("encoder", ENCODER_SPECS, ids=lambda e: "-".join(str(v) for v in e.values()))
def test_gpu_outputs_and_gradients_equal_cpu(encoder: dict) -> None:
    """cuDNN kernels and fused attention (TF32 off) give the CPU's logits and gradients for the same weights."""
    cpu, gpu = model_pair(encoder)
    seqs = [torch.randint(2, 60, (n,)).numpy() for n in (23, 7, 1, 15)]
    tokens, lengths = pad(seqs, "pre", length=30), torch.tensor([len(s) for s in seqs])
    allow = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        out_cpu = cpu(tokens, lengths)
        out_gpu = gpu(tokens.cuda(), lengths.cuda())
        out_cpu.sum().backward()
        out_gpu.sum().backward()
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = allow
    torch.testing.assert_close(out_gpu.cpu(), out_cpu, atol=1e-5, rtol=1e-4)
    for (name, p_cpu), p_gpu in zip(cpu.named_parameters(), gpu.parameters(), strict=True):
        torch.testing.assert_close(p_gpu.grad.cpu(), p_cpu.grad, atol=1e-5, rtol=1e-4, msg=name)


@pytest.mark.parametrize("side", ["pre", "post"])
def test_gpu_padded_batch_equals_each_review_alone(side: str) -> None:
    model = model_pair(recurrent("lstm", True, "last"))[1].eval()
    seqs = [torch.randint(2, 60, (n,)).numpy() for n in (9, 4, 1, 6)]
    lengths = torch.tensor([len(s) for s in seqs]).cuda()
    with torch.no_grad():
        batched = model(pad(seqs, side, length=12).cuda(), lengths)
        alone = torch.cat(
            [model(torch.from_numpy(s).long().unsqueeze(0).cuda(), lengths[i : i + 1]) for i, s in enumerate(seqs)]
        )
    torch.testing.assert_close(batched, alone, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("side", ["pre", "post"])
def test_gpu_encoder_takes_either_padding_side(side: str) -> None:
    """RecurrentEncoder on CUDA inputs (lengths left on the CPU, as a DataLoader gives them): each
    row's summary equals that row alone, whichever side the padding is on."""
    torch.manual_seed(0)
    enc = RecurrentEncoder("lstm", 6, 5, num_layers=2, bidirectional=True, pooling="mean").cuda()
    rows = [torch.randn(n, 6, device="cuda") for n in (9, 4, 1, 12)]
    x = torch.randn(4, 12, 6, device="cuda")  # noise where the padding is
    for i, row in enumerate(rows):
        if side == "pre":
            x[i, 12 - len(row) :] = row
        else:
            x[i, : len(row)] = row
    with torch.no_grad():
        batched = enc(x, torch.tensor([len(r) for r in rows]), padding=side)
        alone = torch.cat([enc(r.unsqueeze(0), torch.tensor([len(r)]), padding=side) for r in rows])
    torch.testing.assert_close(batched, alone, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_runs_the_cudnn_lstm(dtype: torch.dtype) -> None:
    """Under bf16 or fp16 autocast the logits stay finite and close to fp32's."""
    model = model_pair(recurrent("lstm", True, "max"))[1].eval()
    tokens = torch.randint(2, 60, (64, 40), device="cuda")
    lengths = torch.randint(1, 41, (64,), device="cuda")
    with torch.no_grad():
        full = model(tokens, lengths)
        with torch.autocast("cuda", dtype=dtype):
            half = model(tokens, lengths)
    assert torch.isfinite(half).all()
    torch.testing.assert_close(half.float(), full, atol=5e-2, rtol=5e-2)


@pytest.mark.parametrize("encoder", ["lstm", "cnn", "transformer", "nbow"])
def test_trainer_gpu_trains_and_its_checkpoint_loads_on_cpu(encoder: str, tmp_path: Path) -> None:
    """`trainer=gpu` (bf16-mixed) through the real entry point; the checkpoint then classifies on CPU."""
    env = {"SEQSENT_CACHE_DIR": str(tmp_path / "cache"), "SEQSENT_OUTPUT_DIR": str(tmp_path / "runs")}
    run_dir = tmp_path / "run"
    small = [*SMALL, f"model/encoder={encoder}"] + (["model.encoder.hidden_size=32"] if encoder == "lstm" else [])
    proc = run_module(
        "seqsent.train", *small, "trainer=gpu", f"hydra.run.dir={run_dir}", env=env, cwd=tmp_path, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and 0.0 <= metrics["test/acc"] <= 1.0
    config = (run_dir / ".hydra" / "config.yaml").read_text()
    assert "accelerator: gpu" in config and "precision: bf16-mixed" in config
    model = load_classifier(metrics["best_ckpt"], map_location="cpu")
    assert next(model.parameters()).device.type == "cpu"
    with torch.no_grad():
        logits = model(torch.randint(2, 300, (3, 20)), torch.tensor([20, 5, 1]))
    assert logits.shape == (3,) and torch.isfinite(logits).all()


def test_graphed_training_steps_follow_the_eager_steps() -> None:
    """A CUDA-graphed step (benchmarks/bench/graphed.py) trains exactly as the eager loop: the same losses and
    weights after warm-up, replays and an eager step for a batch of another shape."""
    from bench import GraphedTrainStep, seed_model
    from bench.graphed import eager_train_step

    sizes = {"vocab_size": 80, "embed_dim": 16, "hidden_size": 12}
    gen = torch.Generator().manual_seed(0)
    seqs = [torch.randint(2, 80, (int(n),), generator=gen).numpy() for n in torch.randint(1, 31, (72,), generator=gen)]

    def batch(i: int, size: int = 8) -> dict[str, torch.Tensor]:
        part = seqs[i * size : (i + 1) * size]
        labels = torch.tensor([float(len(s) % 2) for s in part])
        tokens, lengths = pad(part, "pre", length=30), torch.tensor([len(s) for s in part])
        return {"tokens": tokens.cuda(), "lengths": lengths.cuda(), "labels": labels.cuda()}

    batches = [batch(i) for i in range(7)] + [batch(8, size=5)]  # the last one takes the eager path
    allow = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        eager_model, graph_model = (seed_model("lstm", sizes, 0).cuda() for _ in range(2))
        eager = eager_train_step(eager_model, eager_model.configure_optimizers())
        eager_losses = torch.stack([eager(b) for b in batches]).cpu()
        graphed = GraphedTrainStep(graph_model, graph_model.configure_optimizers(), batches[:2])
        graph_losses = torch.stack([graphed(b) for b in batches[2:]]).cpu()
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = allow
    assert graphed.eager_steps == 1
    torch.testing.assert_close(graph_losses, eager_losses[2:], rtol=1e-4, atol=1e-5)
    for (name, p), q in zip(eager_model.named_parameters(), graph_model.parameters(), strict=True):
        torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-5, msg=name)
    assert not torch.equal(
        graph_model.net.encoder.forward_layers[0].weight_hh_l0,
        seed_model("lstm", sizes, 0).net.encoder.forward_layers[0].weight_hh_l0.cuda(),
    )
