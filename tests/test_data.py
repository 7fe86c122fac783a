"""Tokenization, vocabulary, cache, padding/truncation, splits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from seqsent.data import BucketBatchSampler, Collator, IMDBDataModule, SyntheticDataModule, pad, truncate
from seqsent.data.cache import split_indices
from seqsent.data.synthetic import make_reviews, write_parquet_dir
from seqsent.data.vocab import (
    PAD_ID,
    UNK_ID,
    encode,
    new_tokenizer,
    tokenizer_from_json,
    train_tokenizer,
    with_detokenize,
)
from seqsent.errors import SeqsentError


def test_normalization_lowercases_strips_br_and_splits_punctuation() -> None:
    tok = new_tokenizer()
    words = tok.pre_tokenizer.pre_tokenize_str(
        tok.normalizer.normalize_str("Great movie!<br /><br />LOVED it, really.")
    )
    assert [w for w, _ in words] == ["great", "movie", "!", "loved", "it", ",", "really", "."]


def test_punctuation_drop_keeps_words_only_and_travels_in_the_tokenizer_json() -> None:
    tok = train_tokenizer(["Great movie!!! Loved it, really... (10/10)"], vocab_size=50, punctuation="drop")
    assert not [t for t in tok.get_vocab() if not t.isalnum() and t not in ("<pad>", "<unk>")]
    again = tokenizer_from_json(tok.to_str())  # what a checkpoint carries
    assert again.encode("great, movie!").tokens == ["great", "movie"]
    kept = train_tokenizer(["Great movie!!!"], vocab_size=50)
    assert kept.encode("great movie!!!").tokens == ["great", "movie", "!!!"]


def test_punctuation_setting_is_checked_and_keys_the_cache(imdb_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(SeqsentError, match="data.punctuation='strip': use 'keep' or 'drop'"):
        IMDBDataModule(path=str(imdb_dir), punctuation="strip")
    kwargs = {"path": str(imdb_dir), "vocab_size": 100, "cache_dir": str(tmp_path / "c")}
    keep, drop = IMDBDataModule(**kwargs), IMDBDataModule(**kwargs, punctuation="drop")
    keep.setup()
    drop.setup()
    assert drop.data.built and drop.data.directory != keep.data.directory
    assert len(drop.data.splits["train"].ids) < len(keep.data.splits["train"].ids)


PTB = "it does n't work , ca n't you see -LRB- `` i can not '' -rrb- ? gon na wan na"
RAW = "it doesn't work, can't you see ( \"i cannot\" ) ? gonna wanna"


def test_detokenize_ptb_reads_penn_treebank_text_as_raw_text_and_travels_in_the_json() -> None:
    raw = train_tokenizer([RAW], vocab_size=50)  # a vocabulary built on raw text, as an IMDB language model's
    assert raw.encode(PTB).tokens != raw.encode(RAW).tokens  # "does", "n", "'", "t" against "doesn", "'", "t"
    vocab = raw.get_vocab()
    ptb = with_detokenize(tokenizer_from_json(raw.to_str()), "ptb")
    assert ptb.get_vocab() == vocab  # the same ids: a language model's embedding still fits
    assert ptb.encode(PTB).tokens == raw.encode(RAW).tokens
    assert "<unk>" not in ptb.encode(PTB).tokens
    assert ptb.encode("Don't! It isn't.").tokens == raw.encode("Don't! It isn't.").tokens  # raw text unchanged
    again = tokenizer_from_json(ptb.to_str())  # what a checkpoint carries
    assert again.encode(PTB).ids == ptb.encode(PTB).ids
    assert with_detokenize(again, "ptb").to_str() == again.to_str()  # rules added once only
    assert with_detokenize(tokenizer_from_json(raw.to_str()), "none").to_str() == raw.to_str()
    built = train_tokenizer([PTB], vocab_size=50, detokenize="ptb")  # a vocabulary built on PTB text
    assert {"doesn", "can", "cannot", "gonna", "("} <= set(built.get_vocab()) and "n" not in built.get_vocab()
    assert built.encode(RAW).tokens == built.encode(PTB).tokens


def test_detokenize_setting_is_checked_keys_the_cache_and_applies_to_a_given_vocabulary(
    imdb_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(SeqsentError, match="data.detokenize='treebank': use 'none' or 'ptb'"):
        IMDBDataModule(path=str(imdb_dir), detokenize="treebank")
    kwargs = {"path": str(imdb_dir), "vocab_size": 100, "cache_dir": str(tmp_path / "c")}
    none, ptb = IMDBDataModule(**kwargs), IMDBDataModule(**kwargs, detokenize="ptb")
    assert "detokenize" not in none.cache_settings()  # entries built before the option keep their keys
    none.setup()
    ptb.setup()
    assert ptb.data.built and ptb.data.directory != none.data.directory
    given = train_tokenizer([RAW], vocab_size=50).to_str()
    dm = IMDBDataModule(**{**kwargs, "tokenizer_json": given}, detokenize="ptb")
    dm.setup()
    assert tokenizer_from_json(dm.preprocessing()["tokenizer_json"]).encode(PTB).tokens == (
        tokenizer_from_json(given).encode(RAW).tokens
    )


def test_vocab_specials_size_and_frequency_order() -> None:
    texts = ["good good good bad bad ugly"] * 3 + ["rare"]
    tok = train_tokenizer(texts, vocab_size=4)
    vocab = tok.get_vocab()
    assert vocab["<pad>"] == PAD_ID == 0 and vocab["<unk>"] == UNK_ID == 1
    assert len(vocab) == 4 and set(vocab) == {"<pad>", "<unk>", "good", "bad"}
    ids, offsets = encode(tok, ["good ugly", "", "  <br />  "])
    assert ids[offsets[0] : offsets[1]].tolist() == [vocab["good"], UNK_ID]
    assert np.diff(offsets).tolist() == [2, 1, 1]  # empty reviews become one <unk>


def test_truncation_and_padding_sides() -> None:
    ids = np.arange(1, 8)
    assert truncate(ids, 3, "pre").tolist() == [5, 6, 7]
    assert truncate(ids, 3, "post").tolist() == [1, 2, 3]
    seqs = [np.array([4, 5]), np.array([6])]
    assert pad(seqs, "pre").tolist() == [[4, 5], [0, 6]]
    assert pad(seqs, "post", length=3).tolist() == [[4, 5, 0], [6, 0, 0]]
    batch = Collator(max_len=2, padding="pre", truncation="post")([(np.array([1, 2, 3]), 1), (np.array([9]), 0)])
    assert batch["tokens"].tolist() == [[1, 2], [0, 9]]
    assert batch["lengths"].tolist() == [2, 1] and batch["labels"].tolist() == [1.0, 0.0]
    fixed = Collator(max_len=5, fixed_length=True)([(np.array([1, 2]), 1)])
    assert fixed["tokens"].shape == (1, 5)


def test_split_is_seeded_disjoint_and_complete() -> None:
    a_train, a_val = split_indices(100, 0.2, seed=3)
    b_train, b_val = split_indices(100, 0.2, seed=3)
    _, c_val = split_indices(100, 0.2, seed=4)
    assert np.array_equal(a_val, b_val) and len(a_val) == 20 and not np.array_equal(a_val, c_val)
    assert sorted(np.concatenate([a_train, a_val]).tolist()) == list(range(100))


def test_vocabulary_is_built_on_the_training_part_only(tmp_path: Path) -> None:
    n = 50
    texts = [f"common word{i}" for i in range(n)]
    root = tmp_path / "d"
    write_parquet_dir(root, {"train": (texts, [i % 2 for i in range(n)]), "test": (["testonly"] * 4, [0, 1, 0, 1])})
    dm = IMDBDataModule(path=str(root), vocab_size=1000, val_fraction=0.2, split_seed=0)
    dm.prepare_data()
    dm.setup("fit")
    vocab = set(json.loads(dm.tokenizer_json)["model"]["vocab"])
    train_idx, val_idx = split_indices(n, 0.2, 0)
    assert {f"word{i}" for i in train_idx} <= vocab
    assert not {f"word{i}" for i in val_idx} & vocab
    assert "testonly" not in vocab


def test_cache_is_reused_and_keyed_by_settings(imdb_dir: Path, tmp_path: Path) -> None:
    kwargs = {"path": str(imdb_dir), "vocab_size": 100, "cache_dir": str(tmp_path / "c")}
    first = IMDBDataModule(**kwargs)
    first.setup()
    assert first.data.built
    again = IMDBDataModule(**kwargs)
    again.setup()
    assert not again.data.built and again.data.directory == first.data.directory
    assert again.tokenizer_json == first.tokenizer_json
    other = IMDBDataModule(**{**kwargs, "vocab_size": 50})
    other.setup()
    assert other.data.built and other.data.directory != first.data.directory
    assert not list((tmp_path / "c").glob(".*tmp*"))  # no temporary leftovers


def test_cache_is_rebuilt_when_the_data_changes(tmp_path: Path) -> None:
    data = tmp_path / "imdb"
    write_parquet_dir(data, {"train": make_reviews(200, seed=1), "test": make_reviews(100, seed=2)})
    kwargs = {"path": str(data), "vocab_size": 100, "cache_dir": str(tmp_path / "c")}
    first = IMDBDataModule(**kwargs)
    first.setup()
    write_parquet_dir(data, {"train": make_reviews(200, seed=3), "test": make_reviews(100, seed=2)})
    again = IMDBDataModule(**kwargs)
    again.setup()  # same path and settings, other reviews: a stale cache would serve the old ones
    assert again.data.built and again.data.directory != first.data.directory
    assert again.data.splits["train"].labels.tolist() == make_reviews(200, seed=3)[1]
    assert first.data.splits["train"].labels.tolist() != again.data.splits["train"].labels.tolist()


def test_cache_follows_the_acl_tree_that_is_read_not_parquet_files_beside_it(tmp_path: Path) -> None:
    """A directory with both: `load_splits` reads the aclImdb tree, so the cache key must change
    when that tree does (the parquet files next to it stay the same)."""
    data = tmp_path / "imdb"
    write_parquet_dir(data, {"train": make_reviews(40, seed=1), "test": make_reviews(20, seed=2)})
    for split in ("train", "test"):
        for name, words in (("neg", "awful dull"), ("pos", "superb moving")):
            folder = data / "aclImdb" / split / name
            folder.mkdir(parents=True)
            for i in range(6):
                (folder / f"{i}_5.txt").write_text(f"{words} review {i}")
    kwargs = {"path": str(data), "vocab_size": 50, "val_fraction": 0.25, "cache_dir": str(tmp_path / "c")}
    first = IMDBDataModule(**kwargs)
    first.setup()
    assert len(first.test_set) == 12  # the tree's reviews, not the 20 parquet ones
    (data / "aclImdb" / "train" / "pos" / "0_5.txt").write_text("an entirely different review now")
    again = IMDBDataModule(**kwargs)
    again.setup()
    assert again.data.built and again.data.directory != first.data.directory


def test_a_damaged_cache_entry_is_rebuilt(imdb_dir: Path, tmp_path: Path) -> None:
    kwargs = {"path": str(imdb_dir), "vocab_size": 100, "cache_dir": str(tmp_path / "c")}
    first = IMDBDataModule(**kwargs)
    first.setup()
    ids = first.data.directory / "train.ids.npy"
    ids.write_bytes(ids.read_bytes()[: len(ids.read_bytes()) // 2])  # a half-written file
    again = IMDBDataModule(**kwargs)
    again.setup()
    assert again.data.built and again.data.directory == first.data.directory
    assert np.array_equal(again.data.splits["train"].ids, first.data.splits["train"].ids)
    (first.data.directory / "test.labels.npy").unlink()  # a missing file
    third = IMDBDataModule(**kwargs)
    third.setup()
    assert third.data.built and np.array_equal(third.data.splits["test"].labels, first.data.splits["test"].labels)
    assert [p.name for p in (tmp_path / "c").iterdir()] == [first.data.directory.name]


def test_datamodule_batches_and_preprocessing(imdb_dir: Path) -> None:
    dm = IMDBDataModule(path=str(imdb_dir), vocab_size=100, max_len=16, batch_size=8, padding="post", truncation="post")
    dm.prepare_data()
    dm.setup("fit")
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (160, 40, 100)
    batch = next(iter(dm.train_dataloader()))
    assert batch["tokens"].dtype == torch.int64 and batch["tokens"].shape[0] == 8
    assert batch["tokens"].shape[1] == batch["lengths"].max() <= 16
    assert set(batch["labels"].tolist()) <= {0.0, 1.0}
    prep = dm.preprocessing()
    assert prep["max_len"] == 16 and prep["padding"] == "post" and isinstance(prep["tokenizer_json"], str)
    assert dm.num_classes == 2 and dm.label_names == prep["label_names"] == ["0", "1"]  # no names in the files


def test_bucket_sampler_covers_everything_and_groups_lengths() -> None:
    lengths = np.random.default_rng(0).integers(1, 500, size=1000)
    sampler = BucketBatchSampler(lengths, batch_size=32, shuffle=True, seed=1)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(1000))
    spread = np.mean([np.ptp(lengths[b]) for b in batches])
    assert spread < 0.2 * np.ptp(lengths)
    sampler.set_epoch(1)
    assert list(sampler) != batches
    shards = [list(BucketBatchSampler(lengths, 32, seed=1, num_replicas=2, rank=r)) for r in (0, 1)]
    assert len(shards[0]) == len(shards[1])


def test_bucketed_training_loader(imdb_dir: Path) -> None:
    dm = IMDBDataModule(path=str(imdb_dir), vocab_size=100, batch_size=16, bucket=True)
    dm.setup("fit")
    seen = sum(len(b["labels"]) for b in dm.train_dataloader())
    assert seen == len(dm.train_set)


@pytest.mark.parametrize("bucket", [True, False])
def test_every_epoch_of_a_lightning_fit_has_its_own_order(bucket: bool, tmp_path: Path) -> None:
    """Lightning itself must reach the sampler's `set_epoch` (the test above calls it by hand): the
    training batches of epochs 0, 1 and 2 differ, and each epoch still covers every review once."""
    import lightning as L
    from lightning.pytorch.callbacks import Callback

    class Tiny(L.LightningModule):  # any model: the batches are the data module's
        def __init__(self) -> None:
            super().__init__()
            self.embedding = torch.nn.Embedding(200, 1)

        def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
            return self.embedding(batch["tokens"]).mean()

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.1)

    class Record(Callback):
        def __init__(self) -> None:
            self.epochs: dict[int, list[list[int]]] = {}

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: ANN001
            self.epochs.setdefault(trainer.current_epoch, []).append(batch["tokens"][:, -1].tolist())

    dm = SyntheticDataModule(n_train=120, n_test=20, vocab_size=200, batch_size=16, bucket=bucket)
    record = Record()
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=3,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[record],
        default_root_dir=tmp_path,
    )
    trainer.fit(Tiny(), datamodule=dm)
    orders = [record.epochs[e] for e in range(3)]
    assert orders[0] != orders[1] and orders[1] != orders[2] and orders[0] != orders[2]
    assert all(sum(len(b) for b in order) == len(dm.train_set) for order in orders)


def test_synthetic_data_goes_through_the_parquet_path() -> None:
    dm = SyntheticDataModule(n_train=100, n_test=50, vocab_size=200)
    dm.prepare_data()
    dm.setup()
    assert Path(dm.path, "train-00000-of-00001.parquet").is_file()
    assert len(dm.train_set) + len(dm.val_set) == 100 and len(dm.test_set) == 50
    assert dm.test_set.labels.tolist().count(1) == 25
