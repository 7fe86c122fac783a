"""Config values of the wrong type fail in one line naming the key and a valid value."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import run_module
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig

from seqsent.config_types import check_config_types
from seqsent.errors import SeqsentError
from seqsent.utils import config_dir, register_resolvers


def composed(*overrides: str):
    """The train config as a run sees it (Hydra's run config set: the trainer group refers to it)."""
    register_resolvers()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, "hydra.runtime.output_dir=/tmp/x"], return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    return cfg


@pytest.mark.parametrize(
    "override,message",
    [
        ("model.lr=abc", "model.lr='abc': use a number, e.g. model.lr=0.001"),
        ("model.bidirectional=maybe", "model.bidirectional='maybe': use true or false, e.g. model.bidirectional=false"),
        ("data.batch_size=1.5", "data.batch_size=1.5: use a whole number, e.g. data.batch_size=32"),
        ("data.soft_labels=3", "data.soft_labels=3: use a string or null"),
        ("trainer.max_epochs=abc", "trainer.max_epochs='abc': use a whole number or null"),
        ("trainer.gradient_clip_val=high", "trainer.gradient_clip_val='high': use a number or null"),
        ("seed=abc", "seed='abc': use a whole number, e.g. seed=42"),
        ("seed=1.5", "seed=1.5: use a whole number, e.g. seed=42"),
    ],
)
def test_wrong_types_name_the_key_and_a_valid_value(override: str, message: str) -> None:
    with pytest.raises(SeqsentError) as err:
        check_config_types(composed(override))
    assert str(err.value) == message


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["model.lr=1"],  # an int where a float belongs is fine
        ["data=synthetic", "data.n_train=50"],  # the subclass's own and its base's arguments
        ["experiment=seed_rnn", "trainer=cpu_bf16", "trainer.devices=1"],
        ["data.soft_labels=/some/file.parquet", "trainer.max_epochs=null"],
    ],
)
def test_valid_configs_pass(overrides: list[str]) -> None:
    check_config_types(composed(*overrides))


def test_the_entry_point_stops_in_one_line(tmp_path: Path) -> None:
    proc = run_module("seqsent.train", "data=synthetic", "model.lr=abc", f"hydra.run.dir={tmp_path / 'r'}")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: model.lr='abc': use a number")


def test_a_misspelled_key_is_one_line_with_the_likely_key() -> None:
    from seqsent.override_keys import check_override_keys

    with pytest.raises(SeqsentError) as err:
        check_override_keys("train", ["model=gru", "model.hiden_size=8"])
    assert str(err.value) == (
        "model.hiden_size is not a setting of this config: did you mean model.hidden_size? "
        "(to add a new key, write +model.hiden_size=...)"
    )
    with pytest.raises(SeqsentError, match="did you mean data.n_test"):  # keys of the chosen data config
        check_override_keys("eval", ["ckpt_path=x.ckpt", "data=synthetic", "data.n_tset=5"])
    with pytest.raises(SeqsentError, match="trainer.max_epoch is not a setting"):
        check_override_keys("train", ["-m", "model=rnn,lstm", "trainer.max_epoch=1"])
    with pytest.raises(SeqsentError, match=r"^sed is not a setting of this config: did you mean seed\?"):
        check_override_keys("train", ["sed=3"])  # a top-level key
    with pytest.raises(SeqsentError, match="did you mean ckpt_path"):
        check_override_keys("eval", ["ckpt_pth=x.ckpt"])


def test_valid_and_hydra_keys_pass_the_key_check() -> None:
    from seqsent.override_keys import check_override_keys

    check_override_keys(
        "train",
        [
            "-m",
            "model=rnn,gru",  # a sweep: checked with its first choice
            "data=synthetic",
            "data.n_train=50",
            "callbacks=diagnostics",
            "callbacks.gradient_flow.every_n_steps=5",
            "+trainer.max_time=00:01:00:00",  # added on purpose: a Trainer argument
            "++model.lr=0.01",  # set or add
            "+tag=mine",  # a top-level key of the user's own
            "hydra.run.dir=/tmp/x",
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2",  # a key of the chosen launcher
            "trainer.plugins.0._target_=x",  # into a list
            "seed=1",
        ],
    )
    check_override_keys("eval", ["ckpt_path=x.ckpt", "trainer.max_epochs=1"])


def test_added_keys_are_checked_against_the_class_they_configure() -> None:
    from seqsent.override_keys import check_override_keys

    with pytest.raises(SeqsentError) as err:
        check_override_keys("train", ["+model.hiden_size=8"])
    assert str(err.value).startswith(
        "+model.hiden_size: SequenceClassifier takes no argument 'hiden_size': did you mean model.hidden_size? "
        "(its arguments: vocab_size, cell,"
    )
    with pytest.raises(SeqsentError, match=r"^\+trainer.max_epoch: Trainer takes no argument .*trainer.max_epochs\?"):
        check_override_keys("train", ["+trainer.max_epoch=1"])
    with pytest.raises(SeqsentError, match=r"^\+model.lr: the config already has model.lr: write model.lr=... without"):
        check_override_keys("train", ["+model.lr=0.1"])


def test_hydra_keys_are_checked_against_hydras_config() -> None:
    from seqsent.override_keys import check_override_keys

    with pytest.raises(
        SeqsentError, match=r"^hydra.run.dri is not a setting of this config: did you mean hydra.run.dir\?"
    ):
        check_override_keys("train", ["hydra.run.dri=/tmp/x"])
    with pytest.raises(SeqsentError, match="hydra.launcher.n_job is not a setting"):
        check_override_keys("train", ["hydra/launcher=joblib", "hydra.launcher.n_job=2"])


@pytest.mark.parametrize(
    "argv,message",
    [
        (
            ["run/checkpoints/last.ckpt"],
            "'run/checkpoints/last.ckpt' is not an override: write key=value (e.g. ckpt_path=run/",
        ),
        (["data=synthetic", "lstm"], "'lstm' is not an override: write key=value"),
        (["model.lr=[1,"], "'model.lr=[1,' is not a valid override (no viable alternative at input '[1,'): quote"),
    ],
)
def test_a_word_that_is_not_an_override_is_one_line(argv: list[str], message: str) -> None:
    from seqsent.override_keys import check_words

    with pytest.raises(SeqsentError) as err:
        check_words(argv)
    assert str(err.value).startswith(message)


def test_flags_and_their_values_are_not_overrides() -> None:
    from seqsent.override_keys import check_words

    check_words(
        ["-m", "--cfg", "job", "--config-name", "train", "-cn", "eval", "--info", "defaults", "~trainer.plugins"]
    )
    check_words(["--config-dir=/tmp/conf", "model=rnn", "--resolve", "--multirun"])
    check_words(
        ["ckpt_paths=[a.ckpt,b.ckpt]", "labels=[RNN,LSTM]", "text='a, b'", "model=rnn,lstm", "~trainer.plugins"]
    )


@pytest.mark.parametrize(
    "override,message",
    [
        (
            "trainer.devices=0",
            "Trainer(devices=0)` value is not a valid input using cpu accelerator: use trainer.devices=auto",
        ),
        ("trainer.devices=-5", "`devices` selected with `CPUAccelerator` should be an int > 0: use trainer.devices"),
        ("+trainer.strategy=nonsense", "invalid strategy name: `strategy='nonsense'`"),
        ("trainer.accelerator=mps", "`MPSAccelerator` can not run on your system"),
    ],
)
def test_trainer_settings_lightning_rejects_are_one_line(tmp_path: Path, override: str, message: str) -> None:
    from seqsent.builders import build_trainer

    with pytest.raises(SeqsentError, match="^trainer settings rejected by Lightning: ") as err:
        build_trainer(composed("data=synthetic", override), [], [])
    assert message in str(err.value) and "\n" not in str(err.value)


def test_the_gpu_fix_is_named_where_no_gpu_is_visible(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from seqsent.builders import trainer_fix

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert trainer_fix("No supported gpu backend found!") == (
        "No supported gpu backend found: no GPU is visible to torch here: use trainer=cpu or trainer.accelerator=auto"
    )


def test_the_entry_points_refuse_a_bare_checkpoint_path_in_one_line(tmp_path: Path) -> None:
    for module in ("seqsent.eval", "seqsent.gradflow"):
        proc = run_module(module, "ckpt_path=x.ckpt", str(tmp_path / "last.ckpt"), cwd=tmp_path)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr[-2000:]
        assert "is not an override: write key=value (e.g. ckpt_path=" in proc.stderr
        assert list(tmp_path.iterdir()) == []


def test_eval_without_a_checkpoint_is_one_line_and_makes_no_directory(tmp_path: Path) -> None:
    proc = run_module("seqsent.eval", "data=synthetic", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: no checkpoint given: python -m seqsent.eval ckpt_path=")
    assert list(tmp_path.iterdir()) == []


def test_the_entry_point_names_the_misspelled_key(tmp_path: Path) -> None:
    proc = run_module("seqsent.train", "data=synthetic", "model.hiden_size=8", f"hydra.run.dir={tmp_path / 'r'}")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr[-2000:]
    assert "did you mean model.hidden_size?" in proc.stderr and not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "name,argv",
    [
        ("train", ["+trainer.limit_train_batches=2"]),  # null in the config: Hydra lets + set it
        ("eval", ["+ckpt_path=/nowhere/x.ckpt"]),
        ("train", ["+hydra.job.env_set={X:1}"]),  # a dict merged into a key that has one
        ("train", ["+model._recursive_=false", "+model._convert_=all"]),  # Hydra's own keys
        ("train", ["data._target_=seqsent.data.SyntheticDataModule", "+data.n_train=100"]),  # another class
        ("train", ["-sc", "install=bash"]),  # shell completion: a flag's value
        ("train", ["--shell-completion", "query=bash"]),
        ("train", ["-m", "model=glob(*)"]),  # a sweep function over a group
        ("train", ["-m", "model=choice(rnn,lstm)", "seed=range(0,3)"]),
    ],
)
def test_valid_command_lines_pass_every_check(name: str, argv: list[str]) -> None:
    from seqsent.override_keys import check_overrides

    check_overrides(name, argv)


@pytest.mark.parametrize(
    "argv,message",
    [
        (["seed=foo(1)"], "'seed=foo(1)' is not a valid override (Unknown function 'foo'): see https://hydra.cc"),
        (["-m", "model.lr=interval(1)"], "(missing a required argument: 'end')"),
        (["+model." + "a" * 300 + "=1"], "SequenceClassifier takes no argument 'aaa"),
        (["hydra.job.env_set.X=1"], "(to add a new key, write +hydra.job.env_set.X=...)"),
        (["hydra.run.dri=x"], "did you mean hydra.run.dir? (--cfg hydra lists Hydra's settings)"),
    ],
)
def test_refusals_name_the_real_reason(argv: list[str], message: str) -> None:
    from seqsent.override_keys import check_overrides

    with pytest.raises(SeqsentError) as err:
        check_overrides("train", argv)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_refused_attempts_error_txt_goes_when_the_run_succeeds(tmp_path: Path) -> None:
    run = tmp_path / "run"
    tiny = ["data=synthetic", "data.n_train=60", "data.n_test=20", "model.hidden_size=8", "model.embed_dim=8"]
    args = [*tiny, "model.bigram_buckets=0", "trainer.max_epochs=1", "test=false", f"hydra.run.dir={run}"]
    refused = run_module("seqsent.train", *args, "trainer.devices=0", "~logger")
    assert refused.returncode == 2 and (run / "error.txt").is_file(), refused.stderr[-2000:]
    proc = run_module("seqsent.train", *args, "~logger")  # no logger: the learning-rate monitor is left out
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (run / "metrics.json").is_file() and not (run / "error.txt").exists()
