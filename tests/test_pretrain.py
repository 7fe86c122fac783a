"""`python -m seqsent.pretrain` end to end on generated reviews: checkpoints a fine-tuning run can read,
metrics.json, TensorBoard, resume, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import run_module
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig

from seqsent.checkpoint import load_classifier, read_checkpoint
from seqsent.data.vocab import EOS, tokenizer_from_json
from seqsent.errors import SeqsentError
from seqsent.pretrain import fine_tune_command, lm_setting_changes, lm_settings, pretrain
from seqsent.utils import config_dir, register_resolvers

SMALL = [
    "data=synthetic",
    "data.n_train=400",
    "data.n_test=100",
    "lm.embed_dim=16",
    "lm.hidden_size=24",
    "lm.num_layers=3",
    "lm.adaptive_cutoffs=[60,100000]",  # the second is beyond the vocabulary: dropped
    "lm_data.batch_size=8",
    "lm_data.bptt=16",
    "lm.scheduler=none",  # the resume test extends the run, which a one-cycle schedule refuses
    "trainer.log_every_n_steps=5",
]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pretrain")
    proc = run_module(
        "seqsent.pretrain", *SMALL, "trainer.max_epochs=1", f"hydra.run.dir={root / 'run'}",
        env={"SEQSENT_CACHE_DIR": str(root / "cache")}, cwd=root,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "== seqsent run finished ==" in proc.stdout
    assert "fine-tune: python -m seqsent.train experiment=ulmfit_imdb model.pretrained=" in proc.stdout
    return root / "run"


def test_it_writes_a_language_model_checkpoint_a_classifier_can_read(pretrained: Path) -> None:
    metrics = json.loads((pretrained / "metrics.json").read_text())
    ckpt = torch.load(metrics["best_ckpt"], map_location="cpu", weights_only=True)
    assert ckpt["seqsent_lm_format"] == 1 and "seqsent_format" not in ckpt
    prep = ckpt["seqsent_preprocessing"]
    assert prep["direction"] == "forward" and prep["punctuation"] == "keep"
    vocab = tokenizer_from_json(prep["tokenizer_json"])
    assert vocab.token_to_id(EOS) == 2
    hp = ckpt["hyper_parameters"]
    assert hp["vocab_size"] == vocab.get_vocab_size() == metrics["lm_data"]["vocab_size"]
    assert hp["adaptive_cutoffs"] == [60] and hp["direction"] == "forward" and hp["embed_dim"] == 16
    assert all(isinstance(v, (int, float, str, bool, list)) for v in hp.values())
    keys = set(ckpt["state_dict"])
    assert {"net.embedding.weight", "net.encoder.layers.2.weight_hh_l0", "net.decoder.head.clusters"} <= keys
    assert ckpt["state_dict"]["net.encoder.layers.2.weight_hh_l0"].shape == (64, 16)  # the last layer: embed_dim
    assert read_checkpoint(metrics["best_ckpt"])["seqsent_lm_format"] == 1  # seqsent's own safe reader


def test_metrics_and_tensorboard_record_perplexity_and_speed(pretrained: Path) -> None:
    metrics = json.loads((pretrained / "metrics.json").read_text())
    assert metrics["epochs"] == 1 and metrics["global_steps"] > 0 and metrics["tokens_per_second"] > 0
    assert 1 < metrics["val/ppl_best"] <= metrics["lm_data"]["vocab_size"] * 2
    assert metrics["lm_data"]["documents"] > 0 and Path(metrics["last_ckpt"]).is_file()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = set()
    for events in (pretrained / "tensorboard").glob("events.out.tfevents.*"):
        acc = EventAccumulator(str(events))
        acc.Reload()
        tags |= set(acc.Tags()["scalars"])
    assert {"train/loss", "train/ppl", "val/loss", "val/ppl"} <= tags


def test_a_language_model_is_not_a_classifier_to_evaluate(pretrained: Path) -> None:
    last = pretrained / "checkpoints" / "last.ckpt"
    with pytest.raises(SeqsentError, match="is a language model .*model.pretrained="):
        load_classifier(last)


def test_resume_trains_on_and_refuses_other_settings(pretrained: Path, tmp_path: Path) -> None:
    env = {"SEQSENT_CACHE_DIR": str(pretrained.parent / "cache")}
    last = pretrained / "checkpoints" / "last.ckpt"
    longer = ["trainer.max_epochs=2", f"ckpt_path={last}"]  # unfinished, so the refusal is the bptt change
    refused = run_module("seqsent.pretrain", *SMALL, "lm_data.bptt=12", *longer, env=env)
    assert refused.returncode == 2, refused.stderr[-2000:]
    assert "lm_data.bptt=12 (checkpoint: 16)" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    steps = json.loads((pretrained / "metrics.json").read_text())["global_steps"]
    proc = run_module("seqsent.pretrain", *SMALL, "trainer.max_epochs=2", f"ckpt_path={last}", env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((pretrained / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and metrics["global_steps"] == 2 * steps


def test_a_run_killed_mid_epoch_resumes_to_the_uninterrupted_weights(tmp_path: Path) -> None:
    """SIGKILL after step 13; the resume from the step-10 checkpoint skips the trained windows, carries on
    the saved state (and RNG) and ends with the weights the run without the kill ended with."""
    env = {"SEQSENT_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(Path(__file__).parent)}
    run = [*SMALL, "trainer.max_epochs=1", "callbacks.step_checkpoint.every_n_train_steps=5"]
    whole = run_module("seqsent.pretrain", *run, f"hydra.run.dir={tmp_path / 'a'}", env=env, cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr[-2000:]
    kill = ["+callbacks.kill._target_=faults.KillAt", "+callbacks.kill.at_step=13"]
    killed = run_module("seqsent.pretrain", *run, *kill, f"hydra.run.dir={tmp_path / 'k'}", env=env, cwd=tmp_path)
    assert killed.returncode < 0, killed.stderr[-2000:]
    last = tmp_path / "k" / "checkpoints" / "last.ckpt"
    saved = torch.load(last, map_location="cpu", weights_only=True)
    assert saved["global_step"] == 10 and "seqsent_lm_state" in saved
    resumed = run_module("seqsent.pretrain", *run, f"ckpt_path={last}", env=env, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    final = [torch.load(tmp_path / r / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"] for r in "ak"]
    assert final[0].keys() == final[1].keys()
    for name, tensor in final[0].items():
        assert torch.equal(tensor, final[1][name]), name


def composed(*overrides: str, run_dir: Path | str = "/tmp/x"):
    """The pretrain config as a run sees it (Hydra's run config set)."""
    register_resolvers()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(
            "pretrain", overrides=[*overrides, f"hydra.runtime.output_dir={run_dir}"], return_hydra_config=True
        )
    HydraConfig.instance().set_config(cfg)
    return cfg


@pytest.mark.parametrize(
    "override,message",
    [
        ("lm.hidden_size=0", "lm.hidden_size=0, lm.num_layers=3: use >= 1"),
        ("lm.input_dropout=1.5", "lm.input_dropout=1.5: use a probability in [0, 1)"),
        ("lm.adaptive_cutoffs=[50,20]", "lm.adaptive_cutoffs=[50, 20]: give increasing whole numbers"),
        ("lm.vocab_size=99", "lm.vocab_size=99 but the vocabulary built on the text has 358 tokens"),
        ("lm_data.bptt=1", "lm_data.bptt=1: use a window of >= 2 tokens"),
        ("lm_data.direction=up", "lm_data.direction='up': use 'forward' or 'backward'"),
        ("trainer.max_epochs=0", "trainer.max_epochs=0 trains nothing"),
    ],
)
def test_bad_settings_are_one_line_errors(tmp_path: Path, override: str, message: str) -> None:
    cfg = composed(*SMALL, override, run_dir=tmp_path)
    with pytest.raises(Exception) as info:
        pretrain.__wrapped__(cfg)  # the entry point prints a SeqsentError as one `error:` line, exit code 2
    err = info.value
    while not isinstance(err, SeqsentError) and err.__cause__ is not None:  # Hydra's instantiate wraps it
        err = err.__cause__
    assert isinstance(err, SeqsentError) and message in str(err) and "\n" not in str(err), repr(err)


def test_init_from_goes_on_from_a_language_model_on_other_text(pretrained: Path, tmp_path: Path) -> None:
    """ULMFiT's second stage: the language model trained on on other reviews (another data seed), with its
    vocabulary, sizes and weights; at a negligible rate it ends where it started, so it started there."""
    best = json.loads((pretrained / "metrics.json").read_text())["best_ckpt"]
    run = [
        "data=synthetic", "data.n_train=400", "data.n_test=100", "data.data_seed=7", "lm_data.batch_size=8",
        "lm_data.bptt=16", "lm.scheduler=none", "lm.lr=1e-12", "lm.weight_decay=0", "trainer.max_epochs=1",
    ]  # fmt: skip
    env = {"SEQSENT_CACHE_DIR": str(pretrained.parent / "cache")}
    proc = run_module("seqsent.pretrain", *run, f"init_from={best}", f"hydra.run.dir={tmp_path / 'b'}", env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    before = torch.load(best, map_location="cpu", weights_only=True)
    after = torch.load(tmp_path / "b" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    count = sum(v.numel() for k, v in before["state_dict"].items() if k != "net.decoder.head.tied")
    assert f"init_from: all {count:,} weights from the forward language model" in proc.stdout
    prep = "seqsent_preprocessing"
    assert after[prep]["tokenizer_json"] == before[prep]["tokenizer_json"]  # its vocabulary, not one built anew
    recorded = (tmp_path / "b" / ".hydra" / "config.yaml").read_text()  # the vocabulary's digest, not the vocabulary
    assert "tokenizer_json: sha256:" in recorded and before[prep]["tokenizer_json"][:40] not in recorded
    for key in ("vocab_size", "embed_dim", "hidden_size", "num_layers", "adaptive_cutoffs"):
        assert after["hyper_parameters"][key] == before["hyper_parameters"][key], key  # not lm=small's sizes
    assert after["state_dict"].keys() == before["state_dict"].keys()
    for name, tensor in before["state_dict"].items():
        torch.testing.assert_close(after["state_dict"][name], tensor, atol=1e-6, rtol=0, msg=name)
    fresh = run_module("seqsent.pretrain", *SMALL[:-1], "data.data_seed=7", "trainer.max_epochs=1",
                       f"hydra.run.dir={tmp_path / 'f'}", env=env)  # fmt: skip
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    trained = json.loads((tmp_path / "b" / "metrics.json").read_text())["val/ppl"]
    assert trained < json.loads((tmp_path / "f" / "metrics.json").read_text())["val/ppl"]  # 1 epoch from scratch


@pytest.mark.parametrize(
    "override,message",
    [
        ("lm.hidden_size=32", "lm.hidden_size=32 but the language model {best} has 24: drop lm.hidden_size (init_from"),
        ("lm_data.direction=backward", "lm_data.direction=backward but the language model {best} has forward"),
        ("data.punctuation=drop", "data.punctuation=drop but the language model {best} was trained with"),
    ],
)
def test_init_from_refuses_settings_that_contradict_its_language_model(
    pretrained: Path, tmp_path: Path, override: str, message: str
) -> None:
    best = json.loads((pretrained / "metrics.json").read_text())["best_ckpt"]
    cfg = composed("data=synthetic", f"init_from={best}", override, run_dir=tmp_path)
    with pytest.raises(SeqsentError) as info:
        pretrain.__wrapped__(cfg)
    assert message.format(best=best) in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "checkpoints").exists()  # refused before the run began


def test_init_from_a_missing_checkpoint_is_a_one_line_error(tmp_path: Path) -> None:
    cfg = composed("data=synthetic", f"init_from={tmp_path / 'none.ckpt'}", run_dir=tmp_path)
    with pytest.raises(SeqsentError, match="init_from: checkpoint .*none.ckpt.*: pass a language model checkpoint"):
        pretrain.__wrapped__(cfg)


@pytest.mark.parametrize("lm", ["small", "awd_lstm"])
def test_the_size_groups_compose_and_check_the_same_settings_a_resume_compares(lm: str) -> None:
    cfg = composed(f"lm={lm}")
    assert cfg.callbacks.model_checkpoint.monitor == "val/ppl" and cfg.callbacks.model_checkpoint.mode == "min"
    assert cfg.trainer.max_epochs == 2  # the documented recipe: two epochs (trainer=default's 3)
    assert composed(f"lm={lm}", "trainer=gpu", "trainer.max_epochs=5").trainer.max_epochs == 5
    assert cfg.lm.direction == cfg.lm_data.direction == "forward"
    settings = lm_settings(cfg.lm, 500)
    assert settings["vocab_size"] == 500 and all(c < 500 for c in settings["adaptive_cutoffs"])
    recorded = {
        "hyper_parameters": {**{k: v for k, v in cfg.lm.items() if k != "_target_"}, **settings},
        "seqsent_data": {"data": dict(cfg.data), "lm_data": {**cfg.lm_data, "bptt": 50}},
    }
    assert lm_setting_changes(cfg, recorded) == ["lm_data.bptt=70 (checkpoint: 50)"]


def test_the_printed_fine_tuning_command_takes_the_recipe_of_the_language_model_s_direction() -> None:
    train = "python -m seqsent.train"
    assert fine_tune_command("forward", "a.ckpt") == f"{train} experiment=ulmfit_imdb model.pretrained=a.ckpt"
    assert fine_tune_command("backward", "b") == f"{train} experiment=ulmfit_imdb_backward model.pretrained=b"
