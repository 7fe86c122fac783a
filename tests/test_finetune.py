"""Fine-tuning into a classifier: discriminative learning rates per layer group (`model.lr_decay`), the slanted
triangular schedule, gradual unfreezing (`callbacks=gradual_unfreezing`), and a language model's vocabulary,
sizes and weights taken by `python -m seqsent.train model.pretrained=LM.ckpt` (`seqsent.finetune`)."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import lightning as L
import pytest
import torch
from helpers import run_module, write_topics
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback, LearningRateMonitor
from lightning.pytorch.loggers import CSVLogger
from omegaconf import DictConfig, OmegaConf
from test_configs import composed

from seqsent.callbacks import GradualUnfreezing
from seqsent.checkpoint import load_classifier
from seqsent.data import SyntheticDataModule
from seqsent.data.vocab import new_tokenizer
from seqsent.errors import SeqsentError, SettingError
from seqsent.finetune import (
    LanguageModelCheckpoint,
    configure,
    copy_weights,
    override_keys,
    prepare,
    read_language_model,
)
from seqsent.models import SequenceClassifier, TextClassifierNet
from seqsent.models.training import SlantedTriangular

AWD = {"name": "awd_lstm", "hidden_size": 8, "num_layers": 2, "weight_dropout": 0.2, "hidden_dropout": 0.1}
GROUPS = ["head", "encoder2", "encoder1", "embedding"]


def tiny_model(**kwargs: Any) -> SequenceClassifier:
    return SequenceClassifier(vocab_size=100, embed_dim=8, encoder=AWD, lr=0.01, **kwargs)


def tiny_fit(tmp_path: Path, model: SequenceClassifier, callbacks: list[Callback], steps: int = 8) -> L.Trainer:
    """`steps` training steps on 4 batches an epoch, with a CSV logger (LearningRateMonitor needs one)."""
    dm = SyntheticDataModule(n_train=80, n_test=20, vocab_size=100, max_len=20, batch_size=16, val_fraction=0.2,
                             cache_dir=str(tmp_path / "cache"))  # fmt: skip
    trainer = L.Trainer(max_steps=steps, limit_val_batches=0, logger=CSVLogger(tmp_path), log_every_n_steps=1,
                        enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=callbacks)  # fmt: skip
    trainer.fit(model, datamodule=dm)
    return trainer


class Snapshots(Callback):
    """Each layer group's weights after every optimizer step (the first entry: before training)."""

    def __init__(self) -> None:
        self.states: list[list[torch.Tensor]] = []

    def _take(self, pl_module: SequenceClassifier) -> None:
        groups = pl_module.layer_groups()
        self.states.append([torch.cat([p.detach().flatten() for p in params]).clone() for _, params in groups])

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._take(pl_module)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        self._take(pl_module)

    def changed(self) -> list[list[bool]]:
        """Per step, whether each group's weights changed in it."""
        steps = zip(self.states, self.states[1:])
        return [[not torch.equal(a, b) for a, b in zip(before, after)] for before, after in steps]


def test_layer_groups_run_top_down_and_cover_every_parameter() -> None:
    model = SequenceClassifier(vocab_size=100, embed_dim=8, encoder=AWD, bigram_buckets=16, bigram_dim=4)
    groups = model.layer_groups()
    assert [name for name, _ in groups] == GROUPS
    assert groups[1][1] == list(model.net.encoder.layers[1].parameters())  # encoder2: the top layer
    assert {id(p) for p in groups[3][1]} == {id(model.net.embedding.weight), id(model.net.bigrams.table.weight)}
    assert sorted(id(p) for _, ps in groups for p in ps) == sorted(id(p) for p in model.parameters())
    plain = SequenceClassifier(vocab_size=100, embed_dim=8, encoder={"name": "cnn"})  # no layer_groups(): one group
    assert [name for name, _ in plain.layer_groups()] == ["head", "encoder", "embedding"]
    bilstm = {"name": "lstm", "num_layers": 2, "bidirectional": True}  # a group: both directions of a layer
    lstm = SequenceClassifier(vocab_size=100, embed_dim=8, encoder=bilstm)
    named = dict(lstm.layer_groups())
    assert list(named) == GROUPS
    encoder = lstm.net.encoder
    assert named["encoder2"] == [*encoder.forward_layers[1].parameters(), *encoder.backward_layers[1].parameters()]


def test_discriminative_learning_rates_per_group_in_the_lr_monitor(tmp_path: Path) -> None:
    monitor = LearningRateMonitor(logging_interval="step")
    tiny_fit(tmp_path, tiny_model(lr_decay=2.0), [monitor], steps=2)
    assert {name: lrs[-1] for name, lrs in monitor.lrs.items()} == pytest.approx(
        {f"lr-Adam/{name}": 0.01 / 2**depth for depth, name in enumerate(GROUPS)}
    )
    one = LearningRateMonitor(logging_interval="step")  # lr_decay=1: one group, logged as before
    tiny_fit(tmp_path / "one", tiny_model(), [one], steps=2)
    assert list(one.lrs) == ["lr-Adam"]


@pytest.mark.parametrize("scheduler", ["slanted", "onecycle"])
def test_every_group_follows_the_schedule_at_its_own_rate(tmp_path: Path, scheduler: str) -> None:
    monitor = LearningRateMonitor(logging_interval="step")
    model = tiny_model(lr_decay=2.6, scheduler=scheduler, warmup_fraction=0.25, slanted_ratio=4.0)
    tiny_fit(tmp_path, model, [monitor], steps=8)
    head = monitor.lrs["lr-Adam/head"]
    for depth, name in enumerate(GROUPS):
        assert monitor.lrs[f"lr-Adam/{name}"] == pytest.approx([lr / 2.6**depth for lr in head])
    if scheduler == "slanted":  # 8 steps, a rise over 2: 1/4, 1 (peak), then down by 1/6 of the span per step
        assert head == pytest.approx([0.01 * (1 + p * 3) / 4 for p in (0, 0.5, 1, 5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6)])
    else:
        assert max(head) == pytest.approx(0.01, rel=1e-3) and head[0] < 0.01 / 10


def test_slanted_schedule_keeps_its_plan_in_checkpoints() -> None:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = torch.optim.lr_scheduler.LambdaLR(optimizer, SlantedTriangular(100, 0.1, 32.0))
    buffer = io.BytesIO()
    torch.save(sched.state_dict(), buffer)
    buffer.seek(0)
    restored = torch.optim.lr_scheduler.LambdaLR(optimizer, SlantedTriangular(500, 0.5, 2.0))
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    fn = restored.lr_lambdas[0]
    assert (fn.total_steps, fn.cut, fn.ratio) == (100, 10, 32.0)
    assert fn(0) == pytest.approx(1 / 32) and fn(10) == 1.0 and fn(100) == pytest.approx(1 / 32) == fn(1000)


def test_gradual_unfreezing_trains_each_group_from_its_step_on(tmp_path: Path) -> None:
    snapshots = Snapshots()
    model = tiny_model(lr_decay=2.6)
    tiny_fit(tmp_path, model, [GradualUnfreezing(every_n_epochs=0.5), snapshots], steps=8)  # 4 steps an epoch
    for step, changed in enumerate(snapshots.changed()):  # a group at depth d trains from step 2 * d on
        assert changed == [step >= 2 * depth for depth in range(len(GROUPS))], step
    assert all(p.requires_grad for p in model.parameters())  # trainable again after fitting


def test_gradual_unfreezing_keeps_held_parameters_fixed(tmp_path: Path) -> None:
    encoder = {"name": "lstm", "hidden_size": 8, "single_bias": True}  # bias_hh held at zero, untrained
    model = SequenceClassifier(vocab_size=100, embed_dim=8, encoder=encoder, lr=0.01)
    tiny_fit(tmp_path, model, [GradualUnfreezing(every_n_epochs=0.25)], steps=6)
    held = [p for n, p in model.named_parameters() if "bias_hh" in n]
    assert held and not any(p.requires_grad or p.any() for p in held)


def test_unfreezing_follows_the_optimizer_step() -> None:
    """A resumed run (its global step restored) trains the groups the original had unfrozen by then."""
    callback = GradualUnfreezing(every_n_epochs=1.5)
    callback._groups = [[]] * 4
    counts = [
        callback.trainable_groups(SimpleNamespace(num_training_batches=9, accumulate_grad_batches=2, global_step=s))
        for s in range(0, 40, 5)
    ]
    assert counts == [1, 1, 2, 2, 3, 4, 4, 4]  # 5 steps an epoch: one more group every 8 steps (7.5 rounded)


def test_bad_fine_tuning_settings_are_one_line_errors() -> None:
    with pytest.raises(SettingError, match=r"model.lr_decay=0.5.*use >= 1"):
        tiny_model(lr_decay=0.5)
    with pytest.raises(SettingError, match=r"model.scheduler='stlr'.*slanted"):
        tiny_model(scheduler="stlr")
    with pytest.raises(SettingError, match=r"every_n_epochs=0: use > 0"):
        GradualUnfreezing(every_n_epochs=0)


# -- a language model's vocabulary, sizes and weights (seqsent.finetune) ----------------------------------------


def language_model(direction: str = "forward", punctuation: str = "keep") -> LanguageModelCheckpoint:
    """A language model as `read_language_model` gives it: the weights of a 2-layer AWD-LSTM body of its own."""
    words = ["<pad>", "<unk>", "<eos>", *(f"w{i}" for i in range(47))]
    tokenizer = new_tokenizer(punctuation)
    tokenizer.add_tokens(words)  # any vocabulary: configure only passes its JSON on
    body = TextClassifierNet(vocab_size=50, embed_dim=12, encoder={**AWD, "hidden_size": 10, "output_size": 12})
    weights = {k: v for k, v in body.state_dict().items() if k.startswith(("embedding.", "encoder."))}
    encoder = {**AWD, "hidden_size": 10, "output_size": 12, "pooling": "concat", "reverse": direction == "backward"}
    return LanguageModelCheckpoint("lm.ckpt", tokenizer.to_str(), punctuation, direction, 50, 12, encoder, weights)


def configured(*overrides: str, lm: LanguageModelCheckpoint | None = None) -> DictConfig:
    """The train config of `data=synthetic model.pretrained=lm.ckpt *overrides`, configured from `lm`."""
    args = ["data=synthetic", "model.pretrained=lm.ckpt", *overrides]
    cfg = composed("train", [*args, "hydra.runtime.output_dir=/tmp/unused"])
    configure(cfg, lm or language_model(), override_keys(args))
    return cfg


def test_the_language_model_decides_vocabulary_sizes_and_encoder() -> None:
    lm = language_model("backward")
    cfg = configured(lm=lm)
    assert cfg.data.tokenizer_json == lm.tokenizer_json and cfg.data.vocab_size == cfg.model.vocab_size == 50
    assert cfg.model.embed_dim == 12 and cfg.model.bigram_buckets == 0  # data=synthetic's 4096: no n-gram tables
    assert OmegaConf.to_container(cfg.model.encoder) == lm.encoder and cfg.model.encoder.reverse
    assert (cfg.model.dropout, cfg.model.lr, cfg.data.max_len) == (0.5, 2e-3, 128)  # the run's own settings
    chosen = configured("model/encoder=awd_lstm", "model.encoder.weight_dropout=0.1", lm=lm).model.encoder
    assert (chosen.weight_dropout, chosen.hidden_dropout, chosen.hidden_size, chosen.reverse) == (0.1, 0.3, 10, True)


@pytest.mark.parametrize(
    "override,message",
    [
        ("data.vocab_size=999", "data.vocab_size=999 but the language model lm.ckpt has 50: drop data.vocab_size"),
        ("data.punctuation=drop", "data.punctuation=drop but the language model lm.ckpt was trained with"),
        ("model.encoder.hidden_size=64", "model.encoder.hidden_size=64 but the language model lm.ckpt has 10"),
        ("model.embed_dim=300", "model.embed_dim=300 but the language model lm.ckpt has 12"),
        ("model/encoder=gru", "model/encoder with model.pretrained: a language model gives the awd_lstm encoder"),
        ("model.encoder.bidirectional=false", "model.encoder.bidirectional: not a setting of the awd_lstm encoder"),
        ("model.bigram_buckets=512", "model.bigram_buckets=512 with model.pretrained"),
        ("+data.tokenizer_json='{}'", "data.tokenizer_json is another vocabulary than the language model"),
    ],
)
def test_settings_that_contradict_the_language_model_are_one_line_errors(override: str, message: str) -> None:
    with pytest.raises(SeqsentError) as info:
        configured(override)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_the_classifier_starts_from_the_language_models_weights() -> None:
    lm = language_model()
    cfg = configured(lm=lm)
    model = instantiate(cfg.model, num_classes=2)
    fresh = {k: v.clone() for k, v in model.net.state_dict().items()}
    line = copy_weights(model.net, lm)
    state = model.net.state_dict()
    assert lm.weights and all(torch.equal(state[k], v) and not torch.equal(fresh[k], v) for k, v in lm.weights.items())
    assert torch.equal(state["head.1.weight"], fresh["head.1.weight"])  # the head starts fresh
    assert f"copied {len(lm.weights)} tensors" in line and "forward language model lm.ckpt" in line
    assert model.hparams.pretrained == "lm.ckpt"  # a record: loading never reads it
    reloaded = SequenceClassifier(**{**model.hparams, "pretrained": "/nowhere/lm.ckpt"})
    reloaded.load_state_dict(model.state_dict())


# -- python -m seqsent.pretrain, then python -m seqsent.train model.pretrained=<its checkpoint> ------------------

TINY_LM = ["lm.embed_dim=16", "lm.hidden_size=24", "lm.num_layers=2", "lm_data.batch_size=16"]
# head alone in epoch 1 (3 steps), the top LSTM layer from epoch 2 on; the schedule may stretch on resume
FINE_TUNE = ["data=synthetic", "trainer.limit_train_batches=3", "callbacks=gradual_unfreezing",
             "model.lr_decay=2.6", "model.scheduler=cosine", "model.lr=1e-2"]  # fmt: skip


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A tiny language model (seqsent.pretrain on data=synthetic), a classifier fine-tuned from it for one epoch
    and then resumed for a second; their paths and outputs."""
    root = tmp_path_factory.mktemp("pretrained")
    env = {"SEQSENT_CACHE_DIR": str(root / "cache")}
    lm = run_module("seqsent.pretrain", "data=synthetic", "trainer.max_epochs=1", *TINY_LM,
                    f"hydra.run.dir={root / 'lm'}", env=env)  # fmt: skip
    assert lm.returncode == 0, lm.stderr[-3000:]
    ckpt = root / "lm" / "checkpoints" / "last.ckpt"
    run = root / "run"
    args = [*FINE_TUNE, f"model.pretrained={ckpt}", f"hydra.run.dir={run}"]
    first = run_module("seqsent.train", *args, "trainer.max_epochs=1", env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    epoch1 = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    resumed = run_module("seqsent.train", *args, "trainer.max_epochs=2", "ckpt_path=last", env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    return {"lm": ckpt, "run": run, "env": env, "first": first.stdout, "resumed": resumed.stdout, "epoch1": epoch1}


def test_fine_tuning_starts_from_the_language_models_weights(pretrained: dict[str, Any]) -> None:
    """The classifier as built (before any training) holds the language model's embedding and LSTM weights."""
    lm = read_language_model(pretrained["lm"])
    cfg = configured(lm=lm)
    torch.manual_seed(0)
    model = instantiate(cfg.model, num_classes=2)
    fresh = {k: v.clone() for k, v in model.net.state_dict().items()}
    copy_weights(model.net, lm)
    lm_state = torch.load(pretrained["lm"], weights_only=True)["state_dict"]
    for key, value in model.net.state_dict().items():
        if key.startswith(("embedding.", "encoder.")):
            assert torch.equal(value, lm_state[f"net.{key}"]) and not torch.equal(value, fresh[key]), key
    assert "model.pretrained: copied 9 tensors" in pretrained["first"]  # the embedding and 2 x 4 LSTM tensors


def test_fine_tuned_run_trains_groups_as_unfrozen_and_resumes(pretrained: dict[str, Any]) -> None:
    """Epoch 1 trains the head alone: the run's embedding and LSTM are the language model's exactly. The resumed
    second epoch (no copying again) also trains the top LSTM layer, and nothing below it."""
    lm = {k.removeprefix("net."): v for k, v in torch.load(pretrained["lm"], weights_only=True)["state_dict"].items()}
    epoch1 = {k.removeprefix("net."): v for k, v in pretrained["epoch1"].items()}
    last = torch.load(pretrained["run"] / "checkpoints" / "last.ckpt", weights_only=True)
    epoch2 = {k.removeprefix("net."): v for k, v in last["state_dict"].items()}
    copied = [k for k in lm if k.startswith(("embedding.", "encoder."))]
    assert all(torch.equal(epoch1[k], lm[k]) for k in copied)
    assert not torch.equal(epoch2["encoder.layers.1.weight_hh_l0"], lm["encoder.layers.1.weight_hh_l0"])
    assert all(torch.equal(epoch2[k], lm[k]) for k in copied if not k.startswith("encoder.layers.1."))
    assert "copied" not in pretrained["resumed"] and last["epoch"] == 2
    assert last["hyper_parameters"]["pretrained"] == str(pretrained["lm"])  # a record only: see the next test


def test_fine_tuned_run_records_the_vocabulary_as_its_digest(pretrained: dict[str, Any]) -> None:
    """The run's `.hydra/config.yaml` (and the resume's) names the language model and its vocabulary's sha256, not
    the vocabulary itself; the checkpoint carries the vocabulary whole."""
    ckpt = torch.load(pretrained["run"] / "checkpoints" / "last.ckpt", weights_only=True)
    vocabulary = ckpt["seqsent_preprocessing"]["tokenizer_json"]
    digest = "sha256:" + hashlib.sha256(vocabulary.encode()).hexdigest()
    for record in (pretrained["run"] / ".hydra", pretrained["run"] / ".hydra" / "resume-1"):
        cfg = OmegaConf.load(record / "config.yaml")
        assert cfg.data.tokenizer_json == digest and cfg.model.pretrained == str(pretrained["lm"]), record
        assert vocabulary[:40] not in (record / "config.yaml").read_text()


def test_fine_tuned_checkpoint_loads_without_the_language_model(pretrained: dict[str, Any], tmp_path: Path) -> None:
    moved = tmp_path / "lm.ckpt"
    pretrained["lm"].rename(moved)
    try:
        model = load_classifier(pretrained["run"] / "checkpoints" / "last.ckpt")
    finally:
        moved.rename(pretrained["lm"])
    assert model.hparams.encoder["name"] == "awd_lstm" and model.preprocessing["tokenizer_json"]


@pytest.mark.parametrize(
    "args,message",
    [
        (["data.vocab_size=5000"], "data.vocab_size=5000 but the language model"),
        (["data.punctuation=drop"], "data.punctuation=drop but the language model"),
        (["model.encoder.hidden_size=64"], "model.encoder.hidden_size=64 but the language model"),
    ],
)
def test_a_mismatch_with_the_language_model_is_a_one_line_error(
    pretrained: dict[str, Any], args: list[str], message: str
) -> None:
    proc = run_module("seqsent.train", "data=synthetic", f"model.pretrained={pretrained['lm']}", *args,
                      env=pretrained["env"])  # fmt: skip
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr[-2000:]
    assert message in proc.stderr


def test_a_classifier_checkpoint_is_no_language_model(pretrained: dict[str, Any]) -> None:
    classifier = pretrained["run"] / "checkpoints" / "last.ckpt"
    with pytest.raises(SeqsentError, match="is a classifier checkpoint .*python -m seqsent.pretrain"):
        read_language_model(classifier)
    with pytest.raises(SeqsentError, match="model.pretrained: checkpoint .*nowhere.ckpt does not exist: pass a lang"):
        read_language_model(classifier.parent / "nowhere.ckpt")
    cfg = composed("train", ["experiment=ulmfit_imdb", "hydra.runtime.output_dir=/tmp/unused"])
    with pytest.raises(SeqsentError, match=r"model.pretrained=required: .* pass model.pretrained="):
        prepare(cfg)


def test_a_language_model_fine_tunes_into_a_multi_class_classifier(pretrained: dict[str, Any], tmp_path: Path) -> None:
    """Another dataset than the language model's (as an IMDB model fine-tuned on TREC-6): its vocabulary, 3 classes."""
    write_topics(tmp_path / "topics", columns=("text", "label"))
    run = tmp_path / "run"
    data = [f"data.path={tmp_path / 'topics'}", "data.num_classes=null"]
    args = [*data, "trainer.max_epochs=1", f"model.pretrained={pretrained['lm']}", f"hydra.run.dir={run}"]
    proc = run_module("seqsent.train", *args, env=pretrained["env"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    model = load_classifier(run / "checkpoints" / "last.ckpt")
    vocabulary = read_language_model(pretrained["lm"]).tokenizer_json
    assert model.hparams.num_classes == 3 and model.preprocessing["tokenizer_json"] == vocabulary
