"""The language model's data (seqsent.data.lm): no classifier validation or test review in its text,
consecutive windows, backward documents, seeded windows, the cache, the vocabulary and the one-line errors."""

from __future__ import annotations

import contextlib
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from conftest import real_imdb_dir

from seqsent.data import IMDBDataModule, LanguageModelDataModule, SyntheticDataModule
from seqsent.data.cache import split_indices
from seqsent.data.lm import WindowSampler, window_bounds
from seqsent.data.soft_labels import review_keys
from seqsent.data.synthetic import make_reviews, write_parquet_dir
from seqsent.data.vocab import EOS, EOS_ID, PAD, UNK, encode, tokenizer_from_json, train_tokenizer
from seqsent.errors import SeqsentError
from seqsent.reliability import ExactResume

SMALL = {"batch_size": 4, "bptt": 10, "heldout_fraction": 0.1, "vocab_size": 500}


def _planted(root: Path, validation: bool = False) -> int:
    """Train 200, test 60 (and validation 40) reviews and 120 unlabeled ones, among them copies of test
    reviews, of classifier-validation reviews and a test review in other letter case (equal once encoded).
    Returns how many copies were planted."""
    train, test = make_reviews(200, seed=1), make_reviews(60, seed=2)
    unlabeled = make_reviews(120, seed=3)[0]
    val = make_reviews(40, seed=4) if validation else None
    val_texts = val[0] if val else [train[0][i] for i in split_indices(200, 0.2, 42)[1]]
    copies = [test[0][0], test[0][7], test[0][11].upper(), val_texts[0], val_texts[3]]
    splits = {"train": train, "test": test, "unsupervised": (unlabeled + copies, [-1] * (120 + len(copies)))}
    if val:
        splits["validation"] = val
    write_parquet_dir(root, splits)
    return len(copies)


def _lm(path: Path, **settings) -> LanguageModelDataModule:
    lm = LanguageModelDataModule(IMDBDataModule(path=str(path)), **{**SMALL, **settings})
    lm.prepare_data()
    lm.setup("fit")
    return lm


def _epoch(loader) -> list[dict]:
    return list(loader)


def _stream(batches: list[dict]) -> np.ndarray:
    """The rows the batches were read from: every window's inputs, then the last window's last target."""
    rows = np.concatenate([b["inputs"].numpy() for b in batches], axis=1)
    return np.concatenate([rows, batches[-1]["targets"].numpy()[:, -1:]], axis=1)


def _documents(rows: np.ndarray) -> list[np.ndarray]:
    """The whole documents of a stream (each ends with <eos>; the tail after the last one is cut off)."""
    flat = rows.reshape(-1).astype(np.int32)  # the dtype of the encoded reviews' keys
    ends = np.flatnonzero(flat == EOS_ID)
    return [flat[a + 1 : b] for a, b in zip(np.concatenate([[-1], ends[:-1]]), ends, strict=True)]


@pytest.mark.parametrize("validation", [False, True], ids=["val_fraction", "val_split"])
def test_no_classifier_validation_or_test_review_reaches_the_language_model(tmp_path: Path, validation: bool) -> None:
    planted = _planted(tmp_path / "data", validation)
    lm = _lm(tmp_path / "data")
    assert lm.stats["duplicates_dropped"] == planted
    train = lm.data.splits["train"]
    val_keys = review_keys(lm.data.splits["validation"].ids, lm.data.splits["validation"].offsets) if validation else (
        review_keys(train.ids, train.offsets, split_indices(200, 0.2, 42)[1])
    )  # fmt: skip
    held = review_keys(lm.data.splits["test"].ids, lm.data.splits["test"].offsets) | val_keys
    seen = 0
    for loader in (lm.train_dataloader(), lm.val_dataloader()):
        docs = _documents(_stream(_epoch(loader)))
        leaked = sum(doc.tobytes() in held for doc in docs)
        assert docs and leaked == 0
        seen += len(docs)
    # every LM document is the training part or unlabeled text, less the copies
    n_train = 200 if validation else 160
    assert lm.stats["documents"] + lm.stats["heldout_documents"] == n_train + 120
    assert seen >= 0.9 * (n_train + 120)  # the streams hold (nearly) all of them: only row tails are cut
    tok = tokenizer_from_json(lm.tokenizer_json)
    assert tok.token_to_id(EOS) == EOS_ID and lm.preprocessing()["tokenizer_json"] == lm.tokenizer_json


def test_windows_are_consecutive_and_cover_each_epoch(tmp_path: Path) -> None:
    _planted(tmp_path / "data")
    lm = _lm(tmp_path / "data")
    loader = lm.train_dataloader()
    for epoch in (0, 1):
        loader.batch_sampler.set_epoch(epoch)
        batches = _epoch(loader)
        assert len(batches) == len(loader)  # the same count every epoch: Lightning's progress bar and resume
        for before, after in zip(batches, batches[1:]):
            assert before["inputs"].shape[0] == 4 and after["inputs"].shape == after["targets"].shape
            assert (after["inputs"][:, 0] == before["targets"][:, -1]).all()  # row b continues row b
            assert (before["inputs"][:, 1:] == before["targets"][:, :-1]).all()  # targets: the next token
        assert np.array_equal(_stream(batches), loader.dataset.rows(epoch))
        lengths = [b["inputs"].shape[1] for b in batches]
        assert len(set(lengths)) > 1 and np.mean(lengths) == pytest.approx(10 * 0.975, rel=0.2)


def test_the_same_seed_and_epoch_give_the_same_windows_and_documents(tmp_path: Path) -> None:
    _planted(tmp_path / "data")
    first, again = _lm(tmp_path / "data", seed=3), _lm(tmp_path / "data", seed=3)
    a, b = first.train_dataloader(), again.train_dataloader()
    assert all(np.array_equal(x["inputs"], y["inputs"]) for x, y in zip(_epoch(a), _epoch(b), strict=True))
    b.batch_sampler.set_epoch(1)
    assert not np.array_equal(a.dataset.rows(0), b.dataset.rows(1))  # another epoch: other order
    assert not np.array_equal(a.batch_sampler.bounds(), b.batch_sampler.bounds())  # and other windows
    # a resumed epoch skips the windows already trained and reads the rest unchanged
    a.batch_sampler.set_epoch(1)
    full = _epoch(a)
    a.batch_sampler.skip_batches(3)
    rest = _epoch(a)
    assert len(rest) == len(full) - 3 and all(np.array_equal(x["inputs"], y["inputs"]) for x, y in zip(full[3:], rest))
    assert len(_epoch(a)) == len(full)  # the skip applies once


def test_window_bounds_follow_awd_lstm() -> None:
    fixed = window_bounds(25, 10, None)
    assert fixed.tolist() == [0, 10, 20, 25]
    bounds = window_bounds(70_000, 70, np.random.default_rng(0))
    lengths = np.diff(bounds)
    assert bounds[0] == 0 and bounds[-1] == 70_000 and lengths.min() >= 4
    assert len(lengths) == len(WindowSampler(70_000, 70, vary=True))
    short = np.mean(lengths < 50)
    assert 0.02 < short < 0.09 and abs(np.median(lengths) - 70) <= 2  # bptt/2 windows 5% of the time


def test_backward_reverses_every_document(tmp_path: Path) -> None:
    _planted(tmp_path / "data")
    forward, backward = _lm(tmp_path / "data"), _lm(tmp_path / "data", direction="backward")
    assert backward.data.directory == forward.data.directory  # direction is no cache setting
    ahead = _documents(forward.train_dataloader().dataset.rows(0))
    behind = _documents(backward.train_dataloader().dataset.rows(0))
    assert len(ahead) == len(behind) > 10
    assert all(np.array_equal(a[::-1], b) for a, b in zip(ahead, behind))
    assert backward.preprocessing()["direction"] == "backward"


def test_the_second_setup_reads_the_cache_and_vocabulary_settings_rebuild_it(tmp_path: Path) -> None:
    _planted(tmp_path / "data")
    first = _lm(tmp_path / "data")
    again = _lm(tmp_path / "data", batch_size=2, bptt=8, max_tokens=1000)
    other = _lm(tmp_path / "data", vocab_size=100)
    assert not again.data.built and again.data.directory == first.data.directory
    assert other.data.directory != first.data.directory
    assert again.tokenizer_json == first.tokenizer_json
    assert again.stats["stream_tokens"] == 1000 < first.stats["stream_tokens"]  # max_tokens caps each epoch
    assert "loaded" in again.summary() and "lm_data.max_tokens" in again.summary()


def test_the_vocabulary_puts_eos_at_2_and_the_classifier_keeps_its_own() -> None:
    texts = ["a good movie", "a bad movie"]
    lm = train_tokenizer(texts, 50, specials=(PAD, UNK, EOS))
    assert [lm.token_to_id(t) for t in (PAD, UNK, EOS)] == [0, 1, 2] and lm.token_to_id("a") == 3
    classifier = train_tokenizer(texts, 50)
    assert classifier.token_to_id(EOS) is None and classifier.token_to_id("a") == 2
    assert encode(lm, ["a movie"])[0].tolist() == [3, 4]


def test_synthetic_data_can_have_an_unlabeled_split_with_test_copies(tmp_path: Path) -> None:
    lm = LanguageModelDataModule(SyntheticDataModule(n_train=100, n_test=50, n_unlabeled=100), **SMALL)
    lm.setup()
    assert lm.stats["unlabeled_documents"] == 100 and lm.stats["duplicates_dropped"] == 4  # every 25th
    assert lm.stats["documents"] + lm.stats["heldout_documents"] == 80 + 96


@pytest.mark.parametrize(
    "settings,message",
    [
        ({"bptt": 1}, "lm_data.bptt=1"),
        ({"heldout_fraction": 0.0}, "lm_data.heldout_fraction=0.0"),
        ({"heldout_fraction": 0.5}, "lm_data.heldout_fraction=0.5"),
        ({"direction": "sideways"}, "lm_data.direction='sideways'"),
        ({"unlabeled_split": "test"}, "lm_data.unlabeled_split='test'"),
        ({"batch_size": "many"}, "lm_data.batch_size='many'"),
        ({"max_tokens": 0}, "lm_data.max_tokens=0"),
    ],
)
def test_bad_settings_are_one_line_errors(imdb_dir: Path, settings: dict, message: str) -> None:
    with pytest.raises(SeqsentError, match=message) as info:
        LanguageModelDataModule(IMDBDataModule(path=str(imdb_dir)), **{**SMALL, **settings})
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "settings,message",
    [
        ({"batch_size": 200, "bptt": 70}, "lower lm_data.batch_size or lm_data.bptt"),
        ({"max_tokens": 30}, "lm_data.max_tokens caps it"),
        ({"unlabeled_split": "extra"}, "has no 'extra' split"),
    ],
)
def test_data_that_cannot_make_the_streams_is_a_one_line_error(imdb_dir: Path, settings: dict, message: str) -> None:
    with pytest.raises(SeqsentError, match=message) as info:
        _lm(imdb_dir, **settings)
    assert "\n" not in str(info.value)


def test_a_classifier_vocabulary_is_refused(imdb_dir: Path) -> None:
    given = train_tokenizer(["a b c"], 10).to_str()
    with pytest.raises(SeqsentError, match="no <eos> at id 2"):
        LanguageModelDataModule(IMDBDataModule(path=str(imdb_dir), tokenizer_json=given))


def test_detokenize_reaches_the_language_models_vocabulary(imdb_dir: Path) -> None:
    lm = LanguageModelDataModule(IMDBDataModule(path=str(imdb_dir), detokenize="ptb"), **SMALL)
    lm.prepare_data()
    lm.setup("fit")
    tok = tokenizer_from_json(lm.tokenizer_json)
    assert tok.encode("it does n't").tokens == tok.encode("it doesn't").tokens


REAL = real_imdb_dir()


@pytest.mark.real_data
@pytest.mark.slow
@pytest.mark.skipif(REAL is None, reason="set SEQSENT_IMDB_DIR to the IMDB parquet directory")
def test_real_imdb_unlabeled_copies_of_test_reviews_are_dropped(tmp_path: Path) -> None:
    lm = LanguageModelDataModule(IMDBDataModule(path=str(REAL), cache_dir=str(tmp_path / "cache")), max_tokens=100_000)
    lm.setup()
    test = lm.data.splits["test"]
    held = review_keys(test.ids, test.offsets)
    unlabeled = lm.data.splits["unsupervised"]
    copies = sum(key in held for key in review_keys(unlabeled.ids, unlabeled.offsets))
    assert copies == 270  # IMDB's unlabeled split repeats test reviews word for word (docs/data.md)
    assert lm.stats["duplicates_dropped"] >= copies
    docs = lm.documents["train"]
    assert not held & review_keys(docs.ids, docs.offsets)
    assert lm.stats["documents"] + lm.stats["heldout_documents"] == 20_000 + 50_000 - lm.stats["duplicates_dropped"]


class _Recorder(L.LightningModule):
    """A bigram model that records each training batch's inputs (to compare runs)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Embedding(500, 500)
        self.seen: list[tuple[int, bytes]] = []

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        self.seen.append((self.current_epoch, batch["inputs"].numpy().tobytes()))
        logits = self.net(batch["inputs"])
        return torch.nn.functional.cross_entropy(logits.flatten(0, 1), batch["targets"].flatten())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


class _Kill(L.Callback):
    """Save a checkpoint after training step `step`, then stop the run as a crash would."""

    def __init__(self, step: int, path: Path) -> None:
        self.step, self.path = step, path

    def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        if trainer.global_step == self.step:
            trainer.save_checkpoint(self.path)
            raise _Killed


class _Killed(Exception):
    pass


def _fit(lm: LanguageModelDataModule, *callbacks: L.Callback, ckpt: Path | None = None) -> tuple[L.Trainer, _Recorder]:
    trainer = L.Trainer(
        accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, limit_val_batches=0, max_epochs=2, callbacks=[ExactResume(), *callbacks],
    )  # fmt: skip
    model = _Recorder()
    with contextlib.suppress(_Killed):
        trainer.fit(model, datamodule=lm, ckpt_path=ckpt)
    return trainer, model


def test_lightning_reads_every_epoch_and_a_mid_epoch_resume_reads_the_rest(tmp_path: Path) -> None:
    _planted(tmp_path / "data")
    lm = _lm(tmp_path / "data", batch_size=16, bptt=20)
    trainer, whole = _fit(lm)
    per_epoch = len(lm.train_dataloader())
    assert trainer.num_training_batches == per_epoch and len(whole.seen) == 2 * per_epoch
    assert whole.seen[0] != whole.seen[per_epoch]  # epoch 1 has its own order and windows
    _, first = _fit(lm, _Kill(per_epoch + 5, tmp_path / "mid.ckpt"))  # killed mid-epoch 1
    _, rest = _fit(lm, ckpt=tmp_path / "mid.ckpt")
    assert len(first.seen) == per_epoch + 5 and first.seen + rest.seen == whole.seen
