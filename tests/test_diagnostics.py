"""Gradient flow over time: per-step norms, gate statistics, the callback and `seqsent.gradflow`, for
recurrent encoders, the Transformer's per-step states and encoders without any (cnn, nbow)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.loggers import TensorBoardLogger

from seqsent.data import SyntheticDataModule
from seqsent.data.batching import pad
from seqsent.diagnostics import (
    GradientFlow,
    NoStepStates,
    encoder_label,
    gate_values,
    gradient_flow,
    gradient_flow_over,
    no_step_states,
    plot_gradient_flow,
)
from seqsent.gradflow import gradflow
from seqsent.models import SequenceClassifier
from seqsent.models.classifier import FORMAT, FORMAT_KEY, PREPROCESSING_KEY
from seqsent.models.pooling import masked_pool
from seqsent.utils import config_dir, register_resolvers

LENGTHS = (12, 7, 3, 12)


def batch_of(lengths: tuple[int, ...] = LENGTHS, side: str = "pre", classes: int = 2) -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    seqs = [torch.randint(2, 50, (n,)).numpy() for n in lengths]
    labels = torch.tensor([i % classes for i in range(len(lengths))])
    return {"tokens": pad(seqs, side), "lengths": torch.tensor(lengths), "labels": labels.float()}


def model_of(name: str, model: dict | None = None, **encoder) -> SequenceClassifier:
    """A tiny classifier with the `name` encoder; `model` holds the classifier's settings, the rest the encoder's."""
    torch.manual_seed(0)
    sizes = {"hidden_size": 6} if name in ("rnn", "lstm", "gru", "lstm_scratch") else {}
    return SequenceClassifier(vocab_size=50, embed_dim=8, encoder={"name": name, **sizes, **encoder}, **(model or {}))


GATE_KEYS = {
    "lstm": {f"l0/{g}_{s}" for g in ("forget", "input", "output") for s in ("mean", "saturated")},
    "gru": {f"l0/{g}_{s}" for g in ("reset", "update") for s in ("mean", "saturated")},
    "rnn": set(),
}


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_per_step_norms_have_one_value_per_distance(cell: str) -> None:
    flow = gradient_flow(model_of(cell), batch_of())
    assert flow.norm_sum.shape == flow.count.shape == (12,)
    assert flow.count.tolist() == [sum(n > d for n in LENGTHS) for d in range(12)]
    norms = flow.mean_norms()
    assert torch.isfinite(norms).all() and (norms > 0).all()
    stats = flow.gate_stats()
    assert set(stats) == GATE_KEYS[cell]
    assert all(0.0 <= v <= 1.0 for v in stats.values())


def hand_rnn_grads(model: SequenceClassifier, x: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """dLoss/dh_t of one review's embedded steps `x` (T, E) through a tanh RNN unrolled by hand; BCE for
    one logit, cross-entropy for several."""
    rnn = model.net.encoder.forward_layers[0]
    h, states = torch.zeros(rnn.hidden_size, dtype=torch.float64), []
    for t in range(len(x)):
        h = torch.tanh(rnn.weight_ih_l0 @ x[t] + rnn.bias_ih_l0 + rnn.weight_hh_l0 @ h + rnn.bias_hh_l0)
        states.append(h)
    logits = model.net.head(h)
    if len(logits) == 1:
        loss = F.binary_cross_entropy_with_logits(logits.squeeze(), label.double())
    else:
        loss = F.cross_entropy(logits[None], label.long()[None])
    return torch.autograd.grad(loss, states)


@pytest.mark.parametrize("classes", [2, 3])
def test_norms_match_a_hand_unrolled_rnn_per_review(classes: int) -> None:
    """||dLoss_b/dh_t|| through the recurrence, indexed by distance from each review's last token; the
    loss is BCE on one logit for two classes, cross-entropy for three."""
    model = model_of("rnn", {"num_classes": classes}).double()
    batch = batch_of(side="pre", classes=classes)
    flow = gradient_flow(model, batch)
    per_distance: dict[int, list[float]] = {}
    for row, n in enumerate(LENGTHS):
        grads = hand_rnn_grads(model, model.net.embedding(batch["tokens"][row, -n:]), batch["labels"][row])
        for t, g in enumerate(grads):
            per_distance.setdefault(n - 1 - t, []).append(float(g.norm()))
    expected = torch.tensor([sum(v) / len(v) for _, v in sorted(per_distance.items())], dtype=torch.float64)
    torch.testing.assert_close(flow.mean_norms(), expected, rtol=1e-6, atol=1e-12)
    assert flow.mean_norms()[-1] < flow.mean_norms()[0]  # a random RNN's gradient shrinks going back
    geometric = [math.exp(sum(map(math.log, v)) / len(v)) for _, v in sorted(per_distance.items())]
    torch.testing.assert_close(flow.geomean_norms(), torch.tensor(geometric, dtype=torch.float64), rtol=1e-6, atol=0)
    assert (flow.geomean_norms() <= flow.mean_norms() * (1 + 1e-12)).all()  # AM >= GM


def unmasked_rows(
    model: SequenceClassifier, batch: dict[str, torch.Tensor], width: int
) -> list[tuple[int, torch.Tensor]]:
    """Per review: (m, embedded (width, E)): its last m = min(length, width) tokens pre-padded to
    `width`, as a model with `unmasked_len=width` reads it, built here from the raw batch."""
    rows = []
    for row, n in enumerate(batch["lengths"].tolist()):
        m = min(n, width)
        own = batch["tokens"][row, batch["tokens"].size(1) - n :][-m:]  # pre-padded batch: the last n are the review
        rows.append((m, model.net.embedding(torch.cat([torch.zeros(width - m, dtype=own.dtype), own]))))
    return rows


def test_norms_of_a_model_that_reads_padding_count_the_review_steps_only() -> None:
    """`unmasked_len`: each review is pre-padded (or cut) to that width; distance 0 is its last
    token at the final step, and the padding steps it reads are left out."""
    width = 9
    model = model_of("rnn", {"unmasked_len": width}).double()
    batch = batch_of(side="pre")  # lengths 12, 7, 3, 12: two are longer than the width
    flow = gradient_flow(model, batch)
    per_distance: dict[int, list[float]] = {}
    for row, (m, x) in enumerate(unmasked_rows(model, batch, width)):
        grads = hand_rnn_grads(model, x, batch["labels"][row])
        for t in range(width - m, width):
            per_distance.setdefault(width - 1 - t, []).append(float(grads[t].norm()))
    expected = torch.tensor([sum(v) / len(v) for _, v in sorted(per_distance.items())], dtype=torch.float64)
    assert flow.count.tolist()[:width] == [len(v) for _, v in sorted(per_distance.items())]
    torch.testing.assert_close(flow.mean_norms()[:width], expected, rtol=1e-6, atol=1e-12)


def test_gate_statistics_of_a_model_that_reads_padding_cover_the_review_steps_only() -> None:
    width = 9
    model = model_of("lstm", {"unmasked_len": width}, bidirectional=True).double()
    batch = batch_of(side="post")
    stats = gradient_flow(model, batch).gate_stats()
    encoder = model.net.encoder
    layers = {"l0": encoder.forward_layers[0], "l0_reverse": encoder.backward_layers[0]}
    for name, layer in layers.items():
        values = []
        for m, x in unmasked_rows(model, batch_of(side="pre"), width):  # the same reviews, pre-padded
            if name.endswith("_reverse"):  # the backward direction reads the sequence reversed
                values.append(gate_values(layer, x.flip(0)[None])["f"][0, :m])
            else:
                values.append(gate_values(layer, x[None])["f"][0, width - m :])
        expected = torch.cat(values).mean().item()
        assert stats[f"{name}/forget_mean"] == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("start_training", [True, False])
def test_analysis_leaves_the_model_untouched(start_training: bool) -> None:
    model = model_of("lstm", num_layers=2, bidirectional=True, dropout=0.3)
    model.train(start_training)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flow = gradient_flow(model, batch_of())
    assert model.training == start_training
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert {k.split("/")[0] for k in flow.gate_stats()} == {"l0", "l1", "l0_reverse", "l1_reverse"}


def test_nn_lstm_and_scratch_lstm_give_the_same_gates_and_norms() -> None:
    lstm, scratch = model_of("lstm"), model_of("lstm_scratch")
    scratch.load_state_dict(lstm.state_dict())
    a, b = gradient_flow(lstm, batch_of()), gradient_flow(scratch, batch_of())
    torch.testing.assert_close(a.mean_norms(), b.mean_norms(), rtol=1e-4, atol=1e-8)
    for key, value in a.gate_stats().items():
        assert b.gate_stats()[key] == pytest.approx(value, abs=1e-5)
    layer = scratch.net.encoder.forward_layers[0]
    layer.record_gates = True
    x = scratch.net.embedding(torch.randint(2, 50, (2, 5)))
    assert not layer.batch_first  # the encoder's layers run time-major
    layer(x.transpose(0, 1))
    gates = gate_values(lstm.net.encoder.forward_layers[0], x.detach())
    for name in "figo":
        torch.testing.assert_close(gates[name], layer.last_gates[name], rtol=1e-5, atol=1e-6)


def test_batches_merge_by_summing() -> None:
    model, batch = model_of("gru"), batch_of()
    whole = gradient_flow(model, batch)
    parts = gradient_flow_over(model, [{k: v[rows] for k, v in batch.items()} for rows in ([0, 1], [2], [3])])
    assert torch.equal(parts.count, whole.count)
    torch.testing.assert_close(parts.mean_norms(), whole.mean_norms(), rtol=1e-4, atol=1e-8)
    torch.testing.assert_close(parts.geomean_norms(), whole.geomean_norms(), rtol=1e-4, atol=0)


def test_gru_gates_follow_its_equations() -> None:
    """Reset and update gates of an `nn.GRU` layer, stepped by hand with its weights (gate order r, z, n)."""
    torch.manual_seed(0)
    layer, x = torch.nn.GRU(3, 4, batch_first=True), torch.randn(2, 5, 3)
    gates = gate_values(layer, x)
    w_ir, w_iz, w_in = layer.weight_ih_l0.chunk(3)
    w_hr, w_hz, w_hn = layer.weight_hh_l0.chunk(3)
    b_ir, b_iz, b_in = layer.bias_ih_l0.chunk(3)
    b_hr, b_hz, b_hn = layer.bias_hh_l0.chunk(3)
    h = torch.zeros(2, 4)
    for t in range(5):
        r = torch.sigmoid(x[:, t] @ w_ir.T + b_ir + h @ w_hr.T + b_hr)
        z = torch.sigmoid(x[:, t] @ w_iz.T + b_iz + h @ w_hz.T + b_hz)
        torch.testing.assert_close(gates["r"][:, t], r.detach())
        torch.testing.assert_close(gates["z"][:, t], z.detach())
        h = ((1 - z) * torch.tanh(x[:, t] @ w_in.T + b_in + r * (h @ w_hn.T + b_hn)) + z * h).detach()


def test_figure_puts_lstm_and_gru_gates_side_by_side() -> None:
    flows = {name: gradient_flow(model_of(name), batch_of()) for name in ("lstm", "gru")}
    gates = plot_gradient_flow(flows).axes[1]
    assert [t.get_text() for t in gates.get_xticklabels()] == [
        f"{gate}\n{what}" for what in ("mean", "saturated") for gate in ("forget", "input", "output", "reset", "update")
    ]
    assert [text.get_text() for text in gates.get_legend().get_texts()] == ["lstm l0", "gru l0"]


TRANSFORMER = {"d_model": 8, "num_heads": 2, "ff_size": 16, "num_layers": 1, "dropout": 0.0}


def test_transformer_token_outputs_get_the_gradient_of_their_mean() -> None:
    """Mean pooling: every one of a review's n_b token outputs gets dLoss_b/dsummary / n_b, whose norm is
    |sigmoid(z_b) - y_b| * ||w_head|| / n_b; averaged per distance from the end over the reviews."""
    model = model_of("transformer", **TRANSFORMER, pooling="mean").double()
    batch = batch_of(side="post")
    flow = gradient_flow(model, batch)
    model.eval()
    logits = model(batch["tokens"], batch["lengths"]).detach()
    w = model.net.head[1].weight.norm().item()
    per_review = (torch.sigmoid(logits) - batch["labels"].double()).abs() * w / batch["lengths"]
    expected = [per_review[[n > d for n in LENGTHS]].mean().item() for d in range(max(LENGTHS))]
    torch.testing.assert_close(flow.mean_norms(), torch.tensor(expected, dtype=torch.float64), rtol=1e-6, atol=0)
    assert flow.count.tolist() == [sum(n > d for n in LENGTHS) for d in range(12)] and flow.gate_stats() == {}


@pytest.mark.parametrize(
    "name,settings,message",
    [
        ("cnn", {"widths": [2, 3], "channels": 4}, "cnn encoder (CNNEncoder) has no per-step states"),
        ("nbow", {}, "nbow encoder (NBOWEncoder) has no per-step states"),
        ("transformer", {**TRANSFORMER, "pooling": "cls"}, "no per-step states its summary is pooled from"),
    ],
)
def test_encoders_without_per_step_states_are_one_line_errors(name: str, settings: dict, message: str) -> None:
    model = model_of(name, **settings)
    assert message in no_step_states(model)
    with pytest.raises(NoStepStates, match=re.escape(message)):
        gradient_flow(model, batch_of())


def test_a_model_without_an_encoder_is_a_one_line_error() -> None:
    with pytest.raises(NoStepStates, match=re.escape("the Linear has no encoder (net.encoder)")):
        gradient_flow(torch.nn.Linear(2, 1), batch_of())


class MeanOfInputs(torch.nn.Module):
    """A user's encoder whose `states()` are not what its summary pools."""

    pooling = "mean"

    def __init__(self, input_size: int):
        super().__init__()
        self.output_size, self.scale = input_size, torch.nn.Parameter(torch.ones(input_size))

    def states(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return x * self.scale + 1.0

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return masked_pool(x * self.scale, lengths, "mean")


def test_states_the_summary_is_not_pooled_from_are_refused_not_measured() -> None:
    model = model_of("nbow")
    model.net.encoder = MeanOfInputs(8)
    assert no_step_states(model) is None  # it looks right until it runs
    with pytest.raises(NoStepStates, match="output is not its states\\(\\) pooled by pooling='mean'"):
        gradient_flow(model, batch_of())
    assert all(p.grad is None for p in model.parameters())


def test_labels_name_the_encoder() -> None:
    assert encoder_label(model_of("lstm", bidirectional=True)) == "bi-lstm"
    assert encoder_label(model_of("gru")) == "gru"
    custom = SequenceClassifier(vocab_size=50, embed_dim=8, encoder={"_target_": "seqsent.models.nbow.NBOWEncoder"})
    assert encoder_label(custom) == "NBOWEncoder"
    assert encoder_label(custom.net) == "NBOWEncoder"  # a bare network: the encoder's class


def tiny_fit(root: Path, callbacks: list, encoder: dict | None = None, logger: bool = False) -> SequenceClassifier:
    L.seed_everything(0)
    dm = SyntheticDataModule(n_train=100, n_test=20, vocab_size=200, max_len=40, batch_size=16, cache_dir=str(root))
    encoder = encoder or {"name": "lstm", "hidden_size": 8}
    model = SequenceClassifier(vocab_size=200, encoder=encoder, embed_dim=8, embed_dropout=0.2)
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=3,
        limit_val_batches=1,
        num_sanity_val_steps=0,
        logger=TensorBoardLogger(root, name="tb", version="") if logger else False,
        callbacks=callbacks,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=dm)
    return model


def logged_tags(root: Path) -> dict[str, list[str]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = list((root / "tb").glob("events.out.tfevents.*"))
    assert events
    acc = EventAccumulator(str(events[0]), size_guidance={"images": 0, "histograms": 0, "scalars": 0}).Reload()
    tags = acc.Tags()
    return tags | {"grad_flow_steps": [e.step for e in acc.Images("diag/grad_flow")] if tags["images"] else []}


def test_callback_writes_figure_histogram_and_scalars(tmp_path: Path) -> None:
    tiny_fit(tmp_path, [GradientFlow(every_n_steps=1, batch_size=8)], logger=True)
    tags = logged_tags(tmp_path)
    assert "diag/grad_flow" in tags["images"] and "diag/grad_norm_per_step" in tags["histograms"]
    assert {"diag/grad_norm/d0", "diag/grad_norm/d10", "diag/gates/l0/forget_mean"} <= set(tags["scalars"])
    assert {"diag/grad_norm_geomean/d0", "diag/grad_norm_geomean/d10"} <= set(tags["scalars"])
    assert "diag/gates/l0/output_saturated" in tags["scalars"]
    assert tags["grad_flow_steps"] == [1, 2, 3]


def test_callback_on_a_transformer_logs_gradient_flow_without_gates(tmp_path: Path) -> None:
    tiny_fit(tmp_path, [GradientFlow(every_n_steps=1, batch_size=8)], {"name": "transformer", **TRANSFORMER}, True)
    tags = logged_tags(tmp_path)
    assert {"diag/grad_norm/d0", "diag/grad_norm_geomean/d10"} <= set(tags["scalars"])
    assert not [t for t in tags["scalars"] if t.startswith("diag/gates/")] and tags["grad_flow_steps"] == [1, 2, 3]


def test_callback_on_a_cnn_warns_once_and_logs_nothing(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="logs nothing: the cnn encoder") as warned:
        tiny_fit(tmp_path, [GradientFlow(every_n_steps=1)], {"name": "cnn", "widths": [2], "channels": 4}, True)
    assert sum("gradient flow" in str(w.message) for w in warned) == 1
    tags = logged_tags(tmp_path)
    assert not [t for t in tags["scalars"] if t.startswith("diag/")] and not tags["images"]


def test_callback_does_not_change_training(tmp_path: Path) -> None:
    plain = tiny_fit(tmp_path, [])
    watched = tiny_fit(tmp_path, [GradientFlow(every_n_steps=1, batch_size=8)])
    for key, value in plain.state_dict().items():
        assert torch.equal(value, watched.state_dict()[key]), key


def test_callback_rejects_bad_settings() -> None:
    with pytest.raises(Exception, match="every_n_steps"):
        GradientFlow(every_n_steps=0)


def write_checkpoint(path: Path, name: str, dm: SyntheticDataModule, **encoder) -> None:
    model = model_of(name, **encoder)
    payload = {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}
    torch.save({**payload, PREPROCESSING_KEY: dm.preprocessing(), FORMAT_KEY: FORMAT}, path)


def gradflow_config(tmp_path: Path, overrides: list[str]):
    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(
            "gradflow",
            overrides=[*overrides, f"hydra.runtime.output_dir={tmp_path / 'run'}"],
            return_hydra_config=True,
        )
    HydraConfig.instance().set_config(cfg)
    return cfg


def test_gradflow_cli_draws_checkpoints_side_by_side(tmp_path: Path) -> None:
    data = ["data=synthetic", "data.n_train=100", "data.n_test=40", "data.vocab_size=50"]
    dm = SyntheticDataModule(n_train=100, n_test=40, vocab_size=50, max_len=30)
    dm.setup()
    paths = {cell: tmp_path / f"{cell}.ckpt" for cell in ("rnn", "lstm")}
    for cell, path in paths.items():
        write_checkpoint(path, cell, dm)
    (tmp_path / "run").mkdir()
    out = tmp_path / "figs" / "flow.png"
    cfg = gradflow_config(
        tmp_path,
        [*data, f"ckpt_paths=[{paths['rnn']},{paths['lstm']}]", "labels=[RNN,LSTM]", f"out={out}", "num_reviews=20"],
    )
    report = gradflow(cfg)
    assert out.is_file() and out.stat().st_size > 1000
    numbers = json.loads((tmp_path / "run" / "gradflow.json").read_text())
    assert set(numbers["models"]) == {"RNN", "LSTM"} == set(report["models"])
    assert numbers["models"]["LSTM"]["gates"] and not numbers["models"]["RNN"]["gates"]
    assert len(numbers["models"]["RNN"]["mean_grad_norm_by_distance"]) == 30
    assert len(numbers["models"]["RNN"]["geomean_grad_norm_by_distance"]) == 30
    assert numbers["models"]["RNN"]["reviews_by_distance"][0] == 20

    cfg = gradflow_config(tmp_path, [*data, f"ckpt_paths=[{paths['rnn']}]", "labels=[A,B]"])
    with pytest.raises(SystemExit) as exit_info:
        gradflow(cfg)
    assert exit_info.value.code == 2


def test_gradflow_labels_by_encoder_and_reports_a_cnn_without_states(tmp_path: Path, capsys) -> None:
    data = ["data=synthetic", "data.n_train=100", "data.n_test=40", "data.vocab_size=50"]
    dm = SyntheticDataModule(n_train=100, n_test=40, vocab_size=50, max_len=30)
    dm.setup()
    write_checkpoint(gru := tmp_path / "gru.ckpt", "gru", dm)
    write_checkpoint(cnn := tmp_path / "cnn.ckpt", "cnn", dm, widths=[2], channels=4)
    (tmp_path / "run").mkdir()
    out = tmp_path / "flow.png"
    report = gradflow(gradflow_config(tmp_path, [*data, f"ckpt_paths=[{gru},{cnn}]", f"out={out}", "num_reviews=8"]))
    models = json.loads((tmp_path / "run" / "gradflow.json").read_text())["models"]
    assert models == report["models"]
    gru_report, cnn_report = (models.pop(f"{name} ({tmp_path.parent.name})") for name in ("gru", "cnn"))
    assert not models
    assert gru_report["encoder"] == "gru" and {"l0/reset_mean", "l0/update_saturated"} <= set(gru_report["gates"])
    assert cnn_report["encoder"] == "cnn" and "no per-step states" in cnn_report["no_step_states"]
    assert "mean_grad_norm_by_distance" not in cnn_report and out.is_file()
    assert "cnn encoder (CNNEncoder) has no per-step states" in capsys.readouterr().out

    second = tmp_path / "second"
    (second / "run").mkdir(parents=True)
    gradflow(gradflow_config(second, [*data, f"ckpt_path={cnn}", f"out={second / 'flow.png'}"]))
    assert not (second / "flow.png").exists()
    assert "figure: none (no checkpoint's encoder has per-step states)" in capsys.readouterr().out


def test_checkpoints_validation_split_is_what_val_analyses_read(tmp_path: Path) -> None:
    """gradflow split=val (and any checkpoint_datamodule) uses the split the run validated on, not
    the command's data.val_fraction / data.split_seed, which would mix in training reviews."""
    from seqsent.builders import checkpoint_datamodule
    from seqsent.checkpoint import load_classifier

    trained = SyntheticDataModule(n_train=100, n_test=20, vocab_size=50, max_len=30, val_fraction=0.3, split_seed=7)
    trained.setup()
    ckpt = tmp_path / "rnn.ckpt"
    write_checkpoint(ckpt, "rnn", trained)
    cfg = gradflow_config(tmp_path, ["data=synthetic", "data.n_train=100", "data.n_test=20", "data.vocab_size=50"])
    assert (cfg.data.val_fraction, cfg.data.split_seed) != (0.3, 7)
    again = checkpoint_datamodule(cfg.data, load_classifier(str(ckpt)), str(ckpt))
    again.setup("fit")
    assert len(again.val_set) == len(trained.val_set) == 30
    assert [again.val_set[i][0].tolist() for i in range(30)] == [trained.val_set[i][0].tolist() for i in range(30)]
    # a checkpoint from before the split was saved: the command's split, as before
    old = tmp_path / "old.ckpt"
    write_checkpoint(old, "rnn", trained)
    payload = torch.load(old, weights_only=True)
    del payload[PREPROCESSING_KEY]["val_fraction"], payload[PREPROCESSING_KEY]["split_seed"]
    torch.save(payload, old)
    fallback = checkpoint_datamodule(cfg.data, load_classifier(str(old)), str(old))
    fallback.setup("fit")
    assert len(fallback.val_set) == round(100 * cfg.data.val_fraction)
