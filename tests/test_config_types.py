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
            "+model.extra=1",  # added on purpose
            "hydra.run.dir=/tmp/x",
            "trainer.plugins.0._target_=x",  # into a list
            "seed=1",
        ],
    )
    check_override_keys("eval", ["ckpt_path=x.ckpt", "trainer.max_epochs=1"])


def test_eval_without_a_checkpoint_is_one_line_and_makes_no_directory(tmp_path: Path) -> None:
    proc = run_module("seqsent.eval", "data=synthetic", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: no checkpoint given: python -m seqsent.eval ckpt_path=")
    assert list(tmp_path.iterdir()) == []


def test_the_entry_point_names_the_misspelled_key(tmp_path: Path) -> None:
    proc = run_module("seqsent.train", "data=synthetic", "model.hiden_size=8", f"hydra.run.dir={tmp_path / 'r'}")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr[-2000:]
    assert "did you mean model.hidden_size?" in proc.stderr and not (tmp_path / "r").exists()
