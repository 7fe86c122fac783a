"""Every config file composes, resolves and instantiates."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import OmegaConf

from seqsent.builders import instantiate_group
from seqsent.utils import config_dir, register_resolvers

CONF = Path(config_dir())
GROUPS = ["data", "model", "model/encoder", "trainer", "callbacks", "logger", "experiment"]
ENCODERS = ["rnn", "lstm", "gru", "lstm_scratch", "cnn", "transformer", "nbow", "awd_lstm"]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def composed(config_name: str, overrides: list[str]):
    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name, overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    return cfg


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in options(g)])
def test_every_group_option_composes_and_resolves(group: str, option: str, tmp_path: Path) -> None:
    cfg = composed("train", [f"{group}={option}", f"hydra.run.dir={tmp_path}", f"hydra.runtime.output_dir={tmp_path}"])
    container = {
        k: OmegaConf.to_container(cfg[k], resolve=True) if OmegaConf.is_config(cfg[k]) else cfg[k]
        for k in cfg
        if k != "hydra"
    }
    assert container["model"]["vocab_size"] == container["data"]["vocab_size"]
    assert container["run_name"] == container["model"]["encoder"]["name"] or group == "experiment"
    model = instantiate(cfg.model, num_classes=2)  # the data's count, as train.py passes it
    assert model.hparams.encoder == OmegaConf.to_container(cfg.model.encoder, resolve=True)
    assert isinstance(model.hparams.encoder, dict)  # a plain dict, for weights_only checkpoints
    if group == "data":
        instantiate(cfg.data, path=str(tmp_path))  # argument checks run in __init__
    if group in ("trainer",) and option != "gpu":
        instantiate(cfg.trainer, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    if group == "logger" and option in ("mlflow", "wandb"):
        pytest.importorskip(option)  # an optional extra
    if group in ("callbacks", "logger"):  # every entry with a _target_ builds
        built = instantiate_group(cfg[group])
        assert len(built) == sum(1 for node in cfg[group].values() if "_target_" in node) > 0


@pytest.mark.parametrize("name", ["train", "eval", "gradflow"])
def test_primary_configs_compose(name: str, tmp_path: Path) -> None:
    overrides = [f"hydra.runtime.output_dir={tmp_path}"] + (["ckpt_path=x.ckpt"] if name != "train" else [])
    cfg = composed(name, overrides)
    assert OmegaConf.to_container(cfg.data, resolve=True)["_target_"].startswith("seqsent.")


@pytest.mark.parametrize("data", options("data"))
def test_every_encoder_composes_with_every_dataset(data: str, tmp_path: Path) -> None:
    """`-m model/encoder=...` sweeps any dataset: each encoder's config resolves under the recipe, and
    the run is named after the encoder."""
    out = f"hydra.runtime.output_dir={tmp_path}"
    for name in ENCODERS:
        cfg = composed("train", [f"model/encoder={name}", f"data={data}", out])
        encoder = OmegaConf.to_container(cfg.model.encoder, resolve=True)
        assert encoder["name"] == cfg.run_name == name and cfg.model.num_classes is None
        assert ("init" in encoder) == (name in ("rnn", "lstm", "gru", "lstm_scratch"))  # recurrent: the recipe's


@pytest.mark.parametrize("name", ENCODERS)
def test_every_encoder_builds_under_the_recipe(name: str, tmp_path: Path) -> None:
    cfg = composed("train", [f"model/encoder={name}", "data=synthetic", f"hydra.runtime.output_dir={tmp_path}"])
    model = instantiate(cfg.model, num_classes=6)
    assert model.hparams.encoder["name"] == name and model.net.head[1].out_features == 6
    with torch.no_grad():
        logits = model(torch.randint(2, 1000, (3, 9)), torch.tensor([9, 4, 1]))
    assert logits.shape == (3, 6) and torch.isfinite(logits).all()


def test_seed_experiments_match_the_notebook(tmp_path: Path) -> None:
    for cell in ("rnn", "lstm"):
        cfg = composed("train", [f"experiment=seed_{cell}", f"hydra.runtime.output_dir={tmp_path}"])
        encoder = cfg.model.encoder
        assert encoder.name == cfg.run_name == cell
        assert (cfg.data.vocab_size, cfg.data.max_len, cfg.data.padding, cfg.data.truncation) == (
            10000,
            200,
            "pre",
            "pre",
        )
        assert (cfg.model.embed_dim, encoder.hidden_size, cfg.data.batch_size) == (128, 128, 32)
        assert (cfg.model.lr, cfg.trainer.max_epochs, cfg.data.val_fraction) == (1e-3, 5, 0.2)
        assert not encoder.bidirectional and encoder.pooling == "last" and cfg.model.optimizer == "adam"
        assert cfg.model.init == encoder.init == "keras"  # Keras' initializers exactly
        assert cfg.model.dropout == encoder.dropout == 0.0
        assert cfg.model.bigram_buckets == 0  # words only, as the notebook


def test_model_choice_swaps_only_the_encoder_name(tmp_path: Path) -> None:
    """model=rnn|gru|lstm_scratch are the recipe with that encoder, the same as model/encoder=<name>."""
    out = f"hydra.runtime.output_dir={tmp_path}"
    cfgs = {m: composed("train", [f"model={m}", out]).model for m in ("rnn", "lstm", "gru", "lstm_scratch")}
    strip = {}
    for m, c in cfgs.items():
        plain = OmegaConf.to_container(c, resolve=True)
        assert plain["encoder"].pop("name") == m
        strip[m] = plain
        assert OmegaConf.to_container(composed("train", [f"model/encoder={m}", out]).model, resolve=True) == {
            **plain,
            "encoder": {**plain["encoder"], "name": m},
        }
    assert strip["rnn"] == strip["lstm"] == strip["gru"] == strip["lstm_scratch"]


@pytest.mark.parametrize("native", [True, False])
def test_bf16_on_a_cpu_without_native_bf16_warns(native: bool, tmp_path: Path, monkeypatch) -> None:
    """bf16-mixed is ~1.5x faster on CPUs with AVX512-BF16/AMX and emulated (slower than fp32) on others."""
    from seqsent import builders

    monkeypatch.setattr(builders, "cpu_has_bf16", lambda: native)
    cfg = composed("train", ["trainer=cpu", "trainer.precision=bf16-mixed", f"hydra.runtime.output_dir={tmp_path}"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer = builders.build_trainer(cfg, callbacks=[], loggers=[])
    assert trainer.precision == "bf16-mixed"
    emulated = [w for w in caught if "without native bf16" in str(w.message)]
    assert len(emulated) == (0 if native else 1)
    if not native:
        assert "use trainer.precision=32-true" in str(emulated[0].message)


def test_gpu_experiments_keep_the_default_recipe_or_scale_it(tmp_path: Path) -> None:
    """experiment=gpu: the default recipe (model and batch) on trainer=gpu; experiment=gpu_large: 4x the
    batch with the learning rate scaled by sqrt(4)."""
    out = f"hydra.runtime.output_dir={tmp_path}"
    base, gpu, large = (
        composed("train", [*extra, out]) for extra in ([], ["experiment=gpu"], ["experiment=gpu_large"])
    )
    assert OmegaConf.to_container(gpu.model) == OmegaConf.to_container(base.model)
    assert gpu.data.batch_size == base.data.batch_size and gpu.trainer.max_epochs == base.trainer.max_epochs
    for cfg in (gpu, large):
        assert (cfg.trainer.accelerator, cfg.trainer.precision) == ("gpu", "bf16-mixed")
    assert large.data.batch_size == 4 * base.data.batch_size and large.model.lr == pytest.approx(2 * base.model.lr)


def test_keras_experiments_are_the_seed_recipes_computed_as_keras_does(tmp_path: Path) -> None:
    out = f"hydra.runtime.output_dir={tmp_path}"
    for cell in ("rnn", "lstm"):
        seed, keras = (composed("train", [f"experiment={name}_{cell}", out]) for name in ("seed", "keras"))
        assert (keras.data.punctuation, keras.model.unmasked_len, keras.model.encoder.single_bias) == (
            "drop",
            200,
            True,
        )
        assert keras.model.unmasked_len == keras.data.max_len
        for key in ("vocab_size", "max_len", "padding", "truncation", "batch_size", "val_fraction"):
            assert keras.data[key] == seed.data[key], key
        for key in ("embed_dim", "init", "optimizer", "lr", "bigram_buckets"):
            assert keras.model[key] == seed.model[key], key
        for key in ("name", "hidden_size", "init"):
            assert keras.model.encoder[key] == seed.model.encoder[key], key
        assert keras.trainer.max_epochs == seed.trainer.max_epochs == 5


def test_student_experiment_is_the_default_recipe_on_soft_labels(tmp_path: Path) -> None:
    out = f"hydra.runtime.output_dir={tmp_path}"
    base, student = composed("train", [out]), composed("train", ["experiment=student", out])
    assert OmegaConf.to_container(student.model) == OmegaConf.to_container(base.model)
    assert student.data.soft_labels == "required" and base.data.soft_labels is None
    assert (student.trainer.max_epochs, student.run_name) == (2, "student")
    for key in ("vocab_size", "max_len", "batch_size", "val_fraction", "split_seed"):
        assert student.data[key] == base.data[key], key


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_long_range_experiment_must_carry_the_cue_with_the_scripts_budget(cell: str, tmp_path: Path) -> None:
    """experiment=long_range: a unidirectional model summarized at the last step (a backward
    direction or max pooling would read the cue directly), with scripts/long_range.py's defaults."""
    import importlib.util

    cfg = composed("train", ["experiment=long_range", f"model={cell}", f"hydra.runtime.output_dir={tmp_path}"])
    assert cfg.data._target_ == "seqsent.data.LongRangeDataModule"
    model = instantiate(cfg.model, num_classes=2)
    encoder = model.hparams.encoder
    assert (encoder["name"], encoder["bidirectional"], encoder["pooling"]) == (cell, False, "last")
    assert model.net.bigrams is None and model.net.trigrams is None
    spec = importlib.util.spec_from_file_location("long_range_script", CONF.parent / "scripts" / "long_range.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    args = script.parse_args([])
    assert (cfg.model.embed_dim, cfg.model.encoder.hidden_size, cfg.model.lr, cfg.model.encoder.init) == (
        args.embed_dim,
        args.hidden_size,
        args.lr,
        args.init,
    )
    assert (cfg.trainer.max_epochs, cfg.trainer.gradient_clip_val, cfg.data.batch_size) == (
        args.epochs,
        args.clip,
        args.batch_size,
    )
