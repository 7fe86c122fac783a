"""Hashed bigram and trigram vectors (`model.bigram_buckets`, `model.trigram_buckets`): the ids, padding
invariance, checkpoints."""

from __future__ import annotations

import pytest
import torch

from seqsent.checkpoint import load_classifier
from seqsent.models import SequenceClassifier
from seqsent.models.classifier import FORMAT, FORMAT_KEY
from seqsent.models.ngrams import MULTIPLIER, HashedNgrams

LSTM4 = {"name": "lstm", "hidden_size": 4}


def test_ids_pair_each_token_with_the_one_before_and_the_first_with_padding() -> None:
    bigrams = HashedNgrams(buckets=7, dim=2, pad_id=0)
    bigrams.buckets = 10**9  # the ids alone: more buckets than pairs, no collisions (and no such table)
    tokens = torch.tensor([[5, 7], [6, 8], [5, 0]])  # time-major (T=3, B=2); review 2 has one token
    ids = bigrams.ids(tokens)
    assert ids[0, 0] == 0 * MULTIPLIER + 5 and ids[1, 0] == 5 * MULTIPLIER + 6 and ids[2, 0] == 6 * MULTIPLIER + 5
    assert ids[0, 1] == 7 and ids[1, 1] == 7 * MULTIPLIER + 8
    assert bigrams.ids(tokens).equal(ids) and tokens[0, 0] == 5  # the input is left as it was
    big = torch.tensor([[40_000], [45_000]])  # 40,000 * MULTIPLIER overflows int32
    assert bigrams.ids(big)[1, 0] == (40_000 * MULTIPLIER + 45_000) % 10**9
    assert bigrams.ids(big.int()).equal(bigrams.ids(big))


def test_ids_fall_in_the_table_and_the_same_bigram_shares_a_row() -> None:
    bigrams = HashedNgrams(buckets=97, dim=3)
    tokens = torch.randint(1, 5000, (40, 6))
    tokens[10:12, 0] = torch.tensor([11, 12])
    tokens[20:22, 3] = torch.tensor([11, 12])
    ids = bigrams.ids(tokens)
    assert int(ids.min()) >= 0 and int(ids.max()) < 97
    assert ids[11, 0] == ids[21, 3]
    assert bigrams(tokens).shape == (40, 6, 3)


def test_trigram_ids_hash_the_two_tokens_before_and_pad_the_start() -> None:
    trigrams = HashedNgrams(buckets=7, dim=2, pad_id=0, order=3)
    trigrams.buckets = 10**15  # the ids alone: no reduction, exact products (no table that large)
    tokens = torch.tensor([[5], [6], [7], [8]])
    ids = trigrams.ids(tokens)[:, 0].tolist()
    m = MULTIPLIER
    assert ids == [5, 5 * m + 6, (5 * m + 6) * m + 7, (6 * m + 7) * m + 8]
    small = HashedNgrams(buckets=101, dim=2, order=3)
    assert int(small.ids(torch.randint(1, 50_000, (30, 4))).max()) < 101
    with pytest.raises(ValueError, match="order"):
        HashedNgrams(buckets=5, dim=2, order=1)


@pytest.mark.parametrize("trigrams", [0, 29])
@pytest.mark.parametrize("bidirectional,pooling", [(False, "last"), (True, "max"), (True, "mean")])
def test_classifier_with_bigrams_ignores_padding_either_side(bidirectional: bool, pooling: str, trigrams: int) -> None:
    torch.manual_seed(0)
    model = SequenceClassifier(
        vocab_size=40,
        embed_dim=5,
        bigram_buckets=31,
        trigram_buckets=trigrams,
        bigram_dim=3,
        encoder={"name": "lstm", "hidden_size": 4, "bidirectional": bidirectional, "pooling": pooling},
    ).eval()
    reviews = [torch.randint(2, 40, (n,)) for n in (6, 2, 4)]
    alone = torch.cat([model(r.unsqueeze(0), torch.tensor([len(r)])) for r in reviews])
    for side in ("pre", "post"):
        batch = torch.zeros(3, 9, dtype=torch.long)
        for i, r in enumerate(reviews):
            if side == "pre":
                batch[i, 9 - len(r) :] = r
            else:
                batch[i, : len(r)] = r
        torch.testing.assert_close(model(batch, torch.tensor([6, 2, 4])), alone, atol=1e-6, rtol=1e-5)


def test_bigram_table_is_trained_and_off_by_default() -> None:
    torch.manual_seed(0)
    assert SequenceClassifier(vocab_size=30, embed_dim=4, encoder=LSTM4).net.bigrams is None
    model = SequenceClassifier(vocab_size=30, embed_dim=4, encoder=LSTM4, bigram_buckets=17, bigram_dim=2)
    assert model.net.encoder.forward_layers[0].input_size == 6
    model(torch.randint(1, 30, (3, 5)), torch.full((3,), 5)).sum().backward()
    assert model.net.bigrams.table.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="bigram_buckets"):
        SequenceClassifier(bigram_buckets=-1)


def test_without_bigrams_every_weight_is_drawn_as_before() -> None:
    """bigram_buckets=0 draws no extra random numbers: earlier runs stay reproducible."""
    torch.manual_seed(3)
    plain = SequenceClassifier(vocab_size=30, embed_dim=4, encoder=LSTM4).state_dict()
    torch.manual_seed(3)
    with_zero = SequenceClassifier(vocab_size=30, embed_dim=4, encoder=LSTM4, bigram_buckets=0).state_dict()
    assert plain.keys() == with_zero.keys() and all(torch.equal(plain[k], with_zero[k]) for k in plain)


def test_checkpoint_with_bigrams_loads_without_hydra(tmp_path) -> None:
    torch.manual_seed(0)
    model = SequenceClassifier(vocab_size=30, embed_dim=4, encoder=LSTM4, bigram_buckets=17, bigram_dim=2).eval()
    path = tmp_path / "m.ckpt"
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams), FORMAT_KEY: FORMAT}, path)
    loaded = load_classifier(path)
    tokens = torch.randint(1, 30, (2, 6))
    torch.testing.assert_close(loaded(tokens, torch.full((2,), 6)), model(tokens, torch.full((2,), 6)))


def test_trigram_table_follows_the_bigram_table_and_is_trained() -> None:
    """The trigram vectors come after the word's and bigram's (input 4 + 2 + 2); trigram_buckets=0 makes
    the bigram-only model, weight for weight; the trigram rows get gradients."""
    models = {}
    for buckets in (None, 0, 13):
        torch.manual_seed(0)
        extra = {} if buckets is None else {"trigram_buckets": buckets}
        models[buckets] = SequenceClassifier(
            vocab_size=30, embed_dim=4, encoder=LSTM4, bigram_buckets=17, bigram_dim=2, **extra
        )
    tri = models[13]
    assert tri.net.encoder.forward_layers[0].input_size == 8 and tri.net.trigrams.table.weight.shape == (13, 2)
    assert models[0].net.trigrams is None and models[0].net.encoder.forward_layers[0].input_size == 6
    for name, value in models[None].state_dict().items():
        torch.testing.assert_close(models[0].state_dict()[name], value, msg=name)
    tri(torch.randint(1, 30, (3, 7)), torch.tensor([7, 5, 2])).sum().backward()
    assert tri.net.trigrams.table.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="trigram_buckets"):
        SequenceClassifier(trigram_buckets=-1)
