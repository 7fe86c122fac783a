"""Padding never reaches an encoder's output: every registered encoder on left-aligned inputs with
garbage padding, every one inside the network on token ids padded on either side, and RecurrentEncoder
on inputs padded on either side (`padding=`)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from seqsent.data import IMDBDataModule
from seqsent.data.batching import pad
from seqsent.models.encoders import RecurrentEncoder
from seqsent.models.network import TextClassifierNet
from seqsent.models.registry import ENCODERS, build_encoder

CONFIGS = [
    (cell, layers, bi, pooling)
    for cell in ("rnn", "lstm", "gru")
    for layers, bi in ((1, False), (2, True))
    for pooling in ("last", "mean", "max")
]


def padded(rows: list[torch.Tensor], side: str, steps: int) -> torch.Tensor:
    """Rows (n, E) in a (B, steps, E) batch, padded on `side` with noise (not zeros, so that a summary
    reading the padding cannot go unnoticed)."""
    x = torch.randn(len(rows), steps, rows[0].size(1))
    for i, row in enumerate(rows):
        if side == "pre":
            x[i, steps - len(row) :] = row
        else:
            x[i, : len(row)] = row
    return x


@pytest.mark.parametrize("side", ["pre", "post"])
@pytest.mark.parametrize("cell,layers,bi,pooling", CONFIGS)
def test_summaries_of_a_padded_batch_equal_each_row_alone(cell: str, layers: int, bi: bool, pooling: str, side: str):
    torch.manual_seed(0)
    enc = RecurrentEncoder(cell, input_size=6, hidden_size=5, num_layers=layers, bidirectional=bi, pooling=pooling)
    rows = [torch.randn(n, 6) for n in (9, 4, 1, 12)]
    lengths = torch.tensor([len(r) for r in rows])
    with torch.no_grad():
        batched = enc(padded(rows, side, 12), lengths, padding=side)
        alone = torch.cat([enc(r.unsqueeze(0), torch.tensor([len(r)]), padding=side) for r in rows])
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("side", ["pre", "post"])
def test_a_datamodule_batch_goes_straight_in(imdb_dir, side: str) -> None:
    """The use in one's own code: embed a DataModule batch and pass it on with the data's padding side
    (the encoder's default is "post", left-aligned inputs; a DataModule's is "pre")."""
    torch.manual_seed(0)
    dm = IMDBDataModule(path=str(imdb_dir), vocab_size=100, max_len=40, padding=side, batch_size=16)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    tokens, lengths = batch["tokens"], batch["lengths"]
    assert (lengths < tokens.size(1)).any()  # some rows are padded
    embed, enc = nn.Embedding(100, 6), RecurrentEncoder("lstm", 6, 5, bidirectional=True, pooling="mean")
    with torch.no_grad():
        summary = enc(embed(tokens), lengths, padding=dm.padding)
        for row, n, got in zip(tokens, lengths.tolist(), summary):
            valid = row[-n:] if side == "pre" else row[:n]
            alone = enc(embed(valid).unsqueeze(0), torch.tensor([n]), padding=side)[0]
            torch.testing.assert_close(got, alone, atol=1e-5, rtol=1e-5)


def test_an_unknown_padding_side_is_refused() -> None:
    enc = RecurrentEncoder("gru", 3, 2)
    with pytest.raises(ValueError, match="padding='left': use one of"):
        enc(torch.randn(1, 2, 3), torch.tensor([2]), padding="left")


def test_the_default_padding_side_is_post_the_encoder_interface() -> None:
    torch.manual_seed(0)
    enc = RecurrentEncoder("lstm", 3, 4, pooling="last")
    rows = [torch.randn(n, 3) for n in (5, 2)]
    x, lengths = padded(rows, "post", 6), torch.tensor([5, 2])
    torch.testing.assert_close(enc(x, lengths), enc(x, lengths, padding="post"), atol=0, rtol=0)
    assert not torch.allclose(enc(x, lengths), enc(x, lengths, padding="pre"))


# small settings per registered encoder (a name without an entry is tested with its defaults)
SMALL = {
    **{cell: {"hidden_size": 5, "num_layers": 2, "bidirectional": True} for cell in ("rnn", "lstm", "gru")},
    "lstm_scratch": {"hidden_size": 3, "bidirectional": True},
    "cnn": {"widths": [2, 5], "channels": 4},
    "transformer": {"d_model": 8, "num_heads": 2, "ff_size": 16, "max_len": 16},
    "awd_lstm": {"hidden_size": 5, "num_layers": 3},
}
VARIANTS = [(name, SMALL.get(name, {})) for name in ENCODERS] + [
    ("lstm", {"hidden_size": 4, "bidirectional": True, "pooling": "mean"}),
    ("transformer", {"d_model": 6, "num_heads": 3, "ff_size": 8, "pooling": "cls", "positions": "sinusoidal"}),
    ("transformer", {"d_model": 6, "num_heads": 1, "ff_size": 8, "pooling": "max", "num_layers": 1}),
    ("nbow", {"pooling": "max"}),
    ("nbow", {"pooling": "mean_max"}),
    ("awd_lstm", {"hidden_size": 4, "num_layers": 2, "output_size": 3, "pooling": "last", "reverse": True}),
]


@pytest.mark.parametrize("name,settings", VARIANTS, ids=[f"{n}-{'-'.join(map(str, s.values()))}" for n, s in VARIANTS])
def test_every_encoder_ignores_the_padding(name: str, settings: dict) -> None:
    """The interface's promise, for every registered encoder: each row of a left-aligned batch with
    garbage in its padding gets the output it gets alone, and no gradient reaches the padding."""
    torch.manual_seed(0)
    enc = build_encoder({"name": name, **settings}, input_size=6).eval()
    rows = [torch.randn(n, 6) for n in (9, 4, 1, 12, 2)]
    lengths = torch.tensor([len(r) for r in rows])
    x = (padded(rows, "post", 12) * 100).requires_grad_()  # the valid steps are restored below
    with torch.no_grad():
        for i, row in enumerate(rows):
            x[i, : len(row)] = row
    batched = enc(x, lengths)
    assert batched.shape == (len(rows), enc.output_size)
    with torch.no_grad():
        alone = torch.cat([enc(r.unsqueeze(0), torch.tensor([len(r)])) for r in rows])
    torch.testing.assert_close(batched.detach(), alone, atol=1e-5, rtol=1e-5)
    batched.pow(2).sum().backward()
    padding = torch.arange(12).unsqueeze(0) >= lengths.unsqueeze(1)
    assert x.grad[padding].abs().max() == 0 and x.grad[~padding].abs().sum() > 0


@pytest.mark.parametrize("name,settings", VARIANTS[: len(ENCODERS)], ids=list(ENCODERS))
def test_every_encoder_trains_all_its_weights(name: str, settings: dict) -> None:
    torch.manual_seed(0)
    enc = build_encoder({"name": name, **settings}, input_size=6).train()
    x = torch.randn(3, 7, 6, requires_grad=True)  # nbow has no weights: the gradient reaches its input
    enc(x, torch.tensor([7, 3, 1])).pow(2).sum().backward()
    assert x.grad.abs().sum() > 0
    for param_name, param in enc.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all() and param.grad.abs().sum() > 0, param_name


@pytest.mark.parametrize("side", ["pre", "post"])
@pytest.mark.parametrize("name,settings", VARIANTS, ids=[f"{n}-{'-'.join(map(str, s.values()))}" for n, s in VARIANTS])
def test_a_network_with_every_encoder_ignores_either_padding_side(name: str, settings: dict, side: str) -> None:
    """Token ids padded on either side: the network left-aligns them, each row's logit equals its own."""
    torch.manual_seed(0)
    spec = {"name": name, **settings}
    net = TextClassifierNet(vocab_size=50, embed_dim=6, encoder=spec, bigram_buckets=64, bigram_dim=2).eval()
    seqs = [torch.randint(2, 50, (n,)).numpy() for n in (9, 4, 1, 6)]
    lengths = torch.tensor([len(s) for s in seqs])
    with torch.no_grad():
        batched = net(pad(seqs, side, length=12), lengths)
        alone = torch.cat([net(torch.from_numpy(s).long().unsqueeze(0), torch.tensor([len(s)])) for s in seqs])
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=1e-5)
