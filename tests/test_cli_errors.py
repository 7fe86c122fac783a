"""The command line's errors: Hydra names unknown keys, options and unreadable overrides; seqsent's
own checks (`SeqsentError`) end in one line and exit code 2; any other error keeps its traceback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import run_module
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig

from seqsent.errors import SeqsentError, SettingError, check_types
from seqsent.utils import config_dir, register_resolvers

TINY = [
    "data=synthetic",
    "data.n_train=60",
    "data.n_test=20",
    "model.encoder.hidden_size=8",
    "model.embed_dim=8",
    "model.bigram_buckets=0",
    "trainer.max_epochs=1",
]


def composed(*overrides: str):
    """The train config as a run sees it (Hydra's run config set: the trainer group refers to it)."""
    register_resolvers()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, "hydra.runtime.output_dir=/tmp/x"], return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    return cfg


@pytest.mark.parametrize(
    "module,args,message",
    [
        ("seqsent.train", ["model.hiden_size=8"], "Could not override 'model.hiden_size'"),
        ("seqsent.train", ["model=transformerxl"], "Could not find 'model/transformerxl'"),
        ("seqsent.train", ["model.lr=[1,"], "no viable alternative at input '[1,'"),
        ("seqsent.eval", ["ckpt_path=x.ckpt", "last.ckpt"], "Error parsing override 'last.ckpt'"),  # no ckpt_path=
    ],
)
def test_hydra_names_unknown_keys_options_and_unreadable_overrides(
    tmp_path: Path, module: str, args: list[str], message: str
) -> None:
    proc = run_module(module, *args, f"hydra.run.dir={tmp_path / 'r'}", cwd=tmp_path)
    assert proc.returncode == 1 and message in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "override,message",
    [
        ("model.lr=abc", "error: model.lr='abc': use a number, e.g. model.lr=0.001"),
        ("seed=foo", "error: seed='foo': use a whole number or null"),
        ("trainer.max_epochs=abc", "error: trainer.max_epochs='abc': use a whole number or null"),
        (
            "trainer.gradient_clip_val=-1",
            "error: trainer.gradient_clip_val=-1: use a positive norm, e.g. 1.0, or null for none",
        ),
        ("model.warmup_fraction=2", "error: model.warmup_fraction=2: use a fraction in [0, 1), e.g. 0.1"),
        ("data.batch_size=1.5", "error: data.batch_size=1.5: use a whole number, e.g. data.batch_size=32"),
    ],
)
def test_wrong_types_are_one_line(tmp_path: Path, override: str, message: str) -> None:
    proc = run_module("seqsent.train", *TINY, override, f"hydra.run.dir={tmp_path / 'r'}")
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1] == message, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


def typed(count: int, rate: float = 0.1, flag: bool = False, name: str | None = None, anything: list | None = None):
    """A signature for `check_types`."""


@pytest.mark.parametrize(
    "values,message",
    [
        ({"count": 1.5}, "x.count=1.5: use a whole number"),
        ({"count": True}, "x.count=True: use a whole number"),
        ({"rate": "abc"}, "x.rate='abc': use a number, e.g. x.rate=0.1"),
        ({"flag": "maybe"}, "x.flag='maybe': use true or false, e.g. x.flag=false"),
        ({"name": 3}, "x.name=3: use a string or null"),
    ],
)
def test_check_types_names_the_setting_and_a_valid_value(values: dict, message: str) -> None:
    with pytest.raises(SettingError) as err:
        check_types(typed, values, "x.")
    assert str(err.value) == message and isinstance(err.value, ValueError)


def test_check_types_passes_fitting_and_unchecked_values() -> None:
    values = {"count": 3, "rate": 1, "flag": True, "name": None, "anything": "not checked", "self": object()}
    check_types(typed, values, "x.")
    check_types(typed, {"count": np.int64(3), "rate": np.float32(0.5)})


TOY_MODULE = """
from seqsent.errors import SeqsentError


class Broken:
    def __init__(self, **kwargs):
        raise ValueError("a bug in my module")


class Refuses:
    def __init__(self, **kwargs):
        raise SeqsentError("my module refuses this setting")
"""


def test_a_users_module_keeps_its_traceback_and_only_seqsent_errors_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "toymod.py").write_text(TOY_MODULE)  # importable: python -m puts the working dir first

    def train(*overrides: str):
        return run_module("seqsent.train", *TINY, *overrides, f"hydra.run.dir={tmp_path / 'r'}", cwd=tmp_path)

    broken = train("model._target_=toymod.Broken")
    assert broken.returncode == 1 and "Traceback (most recent call last)" in broken.stderr
    assert 'raise ValueError("a bug in my module")' in broken.stderr and "error: " not in broken.stderr

    refused = train("model._target_=toymod.Refuses")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines()[-1] == "error: my module refuses this setting"

    unknown = train("+model.hiden_size=8")  # Hydra's call itself fails: its own message, no traceback
    assert unknown.returncode == 1 and "unexpected keyword argument 'hiden_size'" in unknown.stderr
    assert "Traceback" not in unknown.stderr


@pytest.mark.parametrize(
    "module,expected",
    [
        ("seqsent.train", "== Configuration groups =="),
        ("seqsent.eval", "== Configuration groups =="),
        ("seqsent.predict", "python -m seqsent.predict ckpt_path="),
        ("seqsent.compare", "python -m seqsent.compare multirun/"),
    ],
)
def test_help_is_printed(tmp_path: Path, module: str, expected: str) -> None:
    proc = run_module(module, "--help", cwd=tmp_path)
    assert proc.returncode == 0 and expected in proc.stdout, proc.stderr[-2000:]
    assert list(tmp_path.iterdir()) == []


def test_the_run_logs_hold_lightnings_lines_and_the_console_no_noise(tmp_path: Path) -> None:
    env = {"SEQSENT_CACHE_DIR": str(tmp_path / "cache")}
    run = tmp_path / "run"
    proc = run_module("seqsent.train", *TINY, "trainer.limit_train_batches=2", f"hydra.run.dir={run}", env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    log = (run / "train.log").read_text()
    assert "`Trainer.fit` stopped: `max_epochs=1` reached" in log and "GPU available" in log
    assert proc.stderr.count("GPU available") == 1  # on the console once: not also through Lightning's own handlers
    for noise in ("Tip:", "LeafSpec", "FLOPs"):
        assert noise not in proc.stdout + proc.stderr and noise not in log

    ckpt = run / "checkpoints" / "last.ckpt"
    proc = run_module("seqsent.eval", f"ckpt_path={ckpt}", *TINY[:3], f"hydra.run.dir={tmp_path / 'ev'}", env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "GPU available" in (tmp_path / "ev" / "eval.log").read_text()
    assert "Tip:" not in proc.stdout + proc.stderr


def test_eval_without_a_checkpoint_is_one_line_and_makes_no_directory(tmp_path: Path) -> None:
    proc = run_module("seqsent.eval", "data=synthetic", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: no checkpoint given: python -m seqsent.eval ckpt_path=")
    assert list(tmp_path.iterdir()) == []


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
def test_trainer_settings_lightning_rejects_are_one_line(override: str, message: str) -> None:
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


def test_a_refused_attempts_error_txt_goes_when_the_run_succeeds(tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = [*TINY, "test=false", f"hydra.run.dir={run}"]
    refused = run_module("seqsent.train", *args, "trainer.devices=0", "~logger")
    assert refused.returncode == 2 and (run / "error.txt").is_file(), refused.stderr[-2000:]
    proc = run_module("seqsent.train", *args, "~logger")  # no logger: the learning-rate monitor is left out
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (run / "metrics.json").is_file() and not (run / "error.txt").exists()
