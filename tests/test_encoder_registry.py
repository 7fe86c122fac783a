"""The encoder registry (`build_encoder`) and `masked_pool`, the pooling every encoder shares."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from seqsent.errors import SettingError
from seqsent.models.encoders import RecurrentEncoder
from seqsent.models.pooling import masked_pool
from seqsent.models.registry import ENCODERS, build_encoder, register_encoder


class ToyEncoder(nn.Module):
    """A user's encoder outside the registry: the mean of a linear map of the true steps."""

    def __init__(self, input_size: int, width: int = 3, scale: float = 1.0):
        super().__init__()
        self.proj, self.scale, self.output_size = nn.Linear(input_size, width), scale, width

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        return masked_pool(self.proj(x), lengths, "mean") * self.scale


class NoOutputSize(nn.Module):
    def __init__(self, input_size: int):
        super().__init__()


@pytest.mark.parametrize("how", ["last", "mean", "max"])
@pytest.mark.parametrize("dim", [1, 0])
def test_masked_pool_reads_only_the_true_steps(how: str, dim: int) -> None:
    torch.manual_seed(0)
    states, lengths = torch.randn(4, 7, 3), torch.tensor([7, 1, 4, 2])
    expected = []
    for row, n in zip(states, lengths.tolist()):
        valid = row[:n]
        expected.append({"last": valid[-1], "mean": valid.mean(0), "max": valid.max(0).values}[how])
    padded = states.clone()
    for i, n in enumerate(lengths.tolist()):
        padded[i, n:] = 1e6  # anything in the padding: never read
    given = padded if dim == 1 else padded.transpose(0, 1).contiguous()
    torch.testing.assert_close(masked_pool(given, lengths, how, dim=dim), torch.stack(expected))


def test_masked_pool_refuses_an_unknown_pooling() -> None:
    with pytest.raises(ValueError, match="pooling 'avg': use one of"):
        masked_pool(torch.zeros(1, 2, 3), torch.tensor([2]), "avg")


def test_the_registry_holds_the_eight_encoders() -> None:
    assert set(ENCODERS) == {"rnn", "lstm", "gru", "lstm_scratch", "cnn", "transformer", "nbow", "awd_lstm"}
    built = {name: build_encoder({"name": name}, input_size=4) for name in ("cnn", "transformer", "nbow", "awd_lstm")}
    assert [type(enc).__name__ for enc in built.values()] == [
        "CNNEncoder",
        "TransformerEncoder",
        "NBOWEncoder",
        "AWDLSTM",
    ]


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru", "lstm_scratch"])
def test_a_recurrent_name_builds_that_cell(cell: str) -> None:
    enc = build_encoder({"name": cell, "hidden_size": 4, "bidirectional": True}, input_size=6)
    assert isinstance(enc, RecurrentEncoder) and enc.cell == cell and enc.output_size == 8
    assert enc(torch.randn(2, 5, 6), torch.tensor([5, 2])).shape == (2, 8)


def test_a_target_builds_a_class_outside_the_registry() -> None:
    spec = {"_target_": f"{__name__}.ToyEncoder", "name": "toy", "width": 5}  # name: a label only
    enc = build_encoder(spec, input_size=4)
    assert isinstance(enc, ToyEncoder) and enc.output_size == 5 and enc.proj.in_features == 4


def test_a_target_in_a_users_own_file(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file outside seqsent, importable from the working directory (or PYTHONPATH), plugs in by `_target_`."""
    (tmp_path / "my_encoders.py").write_text(
        "from torch import nn\n"
        "from seqsent.models.pooling import masked_pool\n\n"
        "class MaxEncoder(nn.Module):\n"
        "    def __init__(self, input_size: int, size: int = 2):\n"
        "        super().__init__()\n"
        "        self.proj, self.output_size = nn.Linear(input_size, size), size\n\n"
        "    def forward(self, x, lengths):\n"
        "        return masked_pool(self.proj(x), lengths, 'max')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    enc = build_encoder({"_target_": "my_encoders.MaxEncoder", "size": 3}, input_size=4)
    assert enc.output_size == 3 and enc(torch.randn(2, 5, 4), torch.tensor([5, 1])).shape == (2, 3)


def test_register_encoder_makes_a_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("seqsent.models.registry.ENCODERS", dict(ENCODERS))
    from seqsent.models import registry

    assert register_encoder("toy")(ToyEncoder) is ToyEncoder
    assert "toy" in registry.ENCODERS and "toy" not in ENCODERS
    assert build_encoder({"name": "toy", "scale": 2.0}, input_size=3).scale == 2.0


@pytest.mark.parametrize(
    "spec,message",
    [
        ({"name": "lstmx"}, r"model.encoder.name='lstmx': unknown encoder: use one of \[.*'lstm'.*\], or _target_"),
        ({"hidden_size": 3}, r"model.encoder.name is missing: use one of \["),
        (
            {"name": "gru", "hiden_size": 3},
            r"encoder.hiden_size: not a setting of the gru encoder: use one of \[",
        ),
        ({"name": "gru", "cell": "lstm"}, r"model.encoder.cell: not a setting of the gru encoder"),
        ({"name": "gru", "input_size": 3}, r"model.encoder.input_size: the model sets it .*: remove it"),
        ({"name": "gru", "hidden_size": 1.5}, r"model.encoder.hidden_size=1.5: use a whole number, e.g. "),
        ({"name": "lstm", "bidirectional": "yes"}, r"model.encoder.bidirectional='yes': use true or false"),
        ({"_target_": "no_such_module.Encoder"}, r"model.encoder._target_='no_such_module.Encoder': cannot import it"),
        ({"_target_": f"{__name__}.Missing"}, r"cannot import it \(AttributeError: .* has no attribute 'Missing'\)"),
        (
            {"_target_": f"{__name__}.ToyEncoder", "depth": 2},
            r"model.encoder.depth: not a setting of .*\['scale', 'width'\]",
        ),
        ({"_target_": f"{__name__}.NoOutputSize"}, r"\(NoOutputSize\) has no int output_size: set self.output_size"),
    ],
)
def test_a_bad_spec_names_the_key_and_the_fix(spec: dict, message: str) -> None:
    with pytest.raises(SettingError, match=message):
        build_encoder(spec, input_size=4)
