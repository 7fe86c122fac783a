"""RecurrentEncoder takes padded inputs as they come (either side, `padding=`), and its summary of
each row equals the summary of that row alone: the padding never reaches it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from seqsent.data import IMDBDataModule
from seqsent.models.encoders import RecurrentEncoder

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
