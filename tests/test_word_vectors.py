"""Pretrained word vectors: reading word2vec/GloVe files, filling the embedding, coverage, freezing, the
training entry point, and scripts/word_vectors.py."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from helpers import TINY_BIGRAMS, run_module, run_script
from test_adversarial import trained

from seqsent.data.synthetic import NEGATIVE, POSITIVE, make_reviews
from seqsent.errors import SeqsentError
from seqsent.models import SequenceClassifier
from seqsent.models.word_vectors import fill_embedding, read_vectors, token_counts

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "word_vectors.py"
VOCAB = {"great": 2, "awful": 3, "film": 4, "plot": 5}


def write_vectors(path: Path, rows: dict[str, list[float]], header: bool = True) -> Path:
    lines = [f"{len(rows)} {len(next(iter(rows.values())))}"] if header else []
    lines += [" ".join([word, *map(str, vector)]) for word, vector in rows.items()]
    text = "\n".join(lines) + "\n"
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text, encoding="utf-8")
    return path


ROWS = {
    "the": [9.0, 9.0, 9.0],
    "Great": [0.5, 0.5, 0.5],  # a cased row: "great" takes it only when no "great" row exists
    "great": [1.0, 2.0, 3.0],
    "Film": [4.0, 5.0, 6.0],  # "film" has no row of its own: the lowercased fallback
    "awful": [-1.0, -2.0, -3.5],
}


@pytest.mark.parametrize("name,header", [("v.txt", True), ("v.txt", False), ("v.vec.gz", True), ("glove.txt", False)])
def test_vectors_fill_the_vocabularys_rows_and_leave_the_others(tmp_path: Path, name: str, header: bool) -> None:
    path = write_vectors(tmp_path / name, ROWS, header)
    embedding = torch.nn.Embedding(6, 3, padding_idx=0)
    before = embedding.weight.detach().clone()
    counts = np.array([5, 10, 30, 10, 40, 10])  # "plot" (id 5) has no vector, nor <pad>/<unk> (0, 1)
    coverage = fill_embedding(embedding, VOCAB, path, counts)
    weight = embedding.weight.detach()
    assert weight[2].tolist() == [1.0, 2.0, 3.0] and weight[3].tolist() == [-1.0, -2.0, -3.5]
    assert weight[4].tolist() == [4.0, 5.0, 6.0]
    assert torch.equal(weight[[0, 1, 5]], before[[0, 1, 5]])
    assert (coverage.words, coverage.found, coverage.lowercased, coverage.dim) == (4, 3, 1, 3)
    assert coverage.word_share == 0.75 and coverage.token_share == pytest.approx(80 / 105)
    assert coverage.metrics()["embeddings/vocab_coverage"] == 0.75
    assert "3 of 4 vocabulary words (75.0%; 1 by a lowercased row), 76.2% of the training tokens" in coverage.summary()


def test_only_the_wanted_rows_are_parsed(tmp_path: Path) -> None:
    path = tmp_path / "v.txt"
    path.write_text("3 2\ngreat 1 2\nbroken 1 x\nfilm 3 4\n")  # line 3 is only parsed when "broken" is wanted
    found = read_vectors(path, {"great", "film"})
    assert found.dim == 2 and sorted(found.vectors) == ["film", "great"]
    with pytest.raises(SeqsentError, match=r"line 3 of .* is not a word and 2 numbers") as info:
        read_vectors(path, {"broken"})
    assert "\n" not in str(info.value)


def test_a_dimension_mismatch_names_both_sizes_and_the_fix(tmp_path: Path) -> None:
    path = write_vectors(tmp_path / "v.txt", ROWS)
    with pytest.raises(SeqsentError) as info:
        fill_embedding(torch.nn.Embedding(6, 8), VOCAB, path)
    assert str(info.value) == f"{path} holds 3-number vectors but model.embed_dim=8: set model.embed_dim=3"


@pytest.mark.parametrize("content", [None, "", "0 0\n"])
def test_a_missing_or_empty_file_is_one_line(tmp_path: Path, content: str | None) -> None:
    path = tmp_path / "v.txt"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SeqsentError, match="scripts/word_vectors.py") as info:
        read_vectors(path, VOCAB)
    assert "\n" not in str(info.value)


def test_token_counts_count_only_the_chosen_reviews() -> None:
    ids, offsets = np.array([2, 3, 3, 4, 2, 5]), np.array([0, 2, 4, 6])
    assert token_counts(ids, offsets, np.array([0, 2]), 7).tolist() == [0, 0, 2, 1, 0, 1, 0]


def test_a_word2vec_binary_file_is_read_with_gensim(tmp_path: Path) -> None:
    models = pytest.importorskip("gensim.models")
    kv = models.KeyedVectors(3)
    kv.add_vectors(["great", "Film"], np.array([[1, 2, 3], [4, 5, 6]], dtype=np.float32))
    kv.save_word2vec_format(str(tmp_path / "v.bin"), binary=True)
    found = read_vectors(tmp_path / "v.bin", VOCAB)
    assert found.vectors["great"].tolist() == [1, 2, 3] and found.lowercased == {"film"}


def test_a_frozen_embedding_is_unchanged_by_training() -> None:
    torch.manual_seed(0)
    model = SequenceClassifier(vocab_size=120, embed_dim=8, freeze_embeddings=True, optimizer="adamw", weight_decay=0.1)
    embedding = model.net.embedding.weight.detach().clone()
    head = model.net.head[1].weight.detach().clone()
    trained(model, 3)
    assert torch.equal(model.net.embedding.weight, embedding) and not torch.equal(model.net.head[1].weight, head)


SMALL = [
    "data=synthetic",
    "data.n_train=160",
    "data.n_test=40",
    "data.vocab_size=200",
    "data.batch_size=16",
    "model.encoder.hidden_size=8",
    TINY_BIGRAMS,
    "model.embed_dim=4",
    "model.scheduler=none",
    "trainer.log_every_n_steps=1",
]


def test_seqsent_train_loads_the_vectors_at_the_start_and_a_resume_does_not(tmp_path: Path) -> None:
    rows = {w: [float(i), 1.0, -1.0, 0.5] for i, w in enumerate(POSITIVE + NEGATIVE)}
    vectors = write_vectors(tmp_path / "vectors.txt", rows)
    run, env = tmp_path / "run", {"SEQSENT_CACHE_DIR": str(tmp_path / "cache")}
    args = [*SMALL, f"model.pretrained_embeddings={vectors}", "model.freeze_embeddings=true", "model.adversarial=at"]
    first = run_module("seqsent.train", *args, "trainer.max_steps=4", f"hydra.run.dir={run}", env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    vocab = json.loads(ckpt["seqsent_preprocessing"]["tokenizer_json"])["model"]["vocab"]
    found = [w for w in rows if w in vocab]  # the cue words the 200-word vocabulary holds
    assert f"word vectors: {vectors} (4 numbers): {len(found)} of {len(vocab) - 2} vocabulary words" in first.stdout
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["embeddings/words_found"] == len(found) > 0 and 0 < metrics["embeddings/token_coverage"] < 1
    weight = ckpt["state_dict"]["net.embedding.weight"]
    assert all(weight[vocab[w]].tolist() == rows[w] for w in found)  # loaded, and frozen: unchanged
    vectors.unlink()  # a resume never reads the file: the checkpoint holds the weights
    resume = [f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}", f"hydra.run.dir={run}"]
    resumed = run_module("seqsent.train", *args, "trainer.max_steps=6", *resume, env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "word vectors: " not in resumed.stdout


def test_seqsent_train_refuses_a_missing_vectors_file_before_the_data(tmp_path: Path) -> None:
    proc = run_module(
        "seqsent.train", *SMALL, f"model.pretrained_embeddings={tmp_path / 'no.txt'}", f"hydra.run.dir={tmp_path / 'r'}"
    )
    assert proc.returncode == 2
    assert f"error: model.pretrained_embeddings={tmp_path / 'no.txt'} does not exist:" in proc.stderr
    assert not (tmp_path / "cache").exists()


def test_the_script_trains_vectors_on_the_language_models_text_without_test_reviews(tmp_path: Path) -> None:
    pytest.importorskip("gensim")
    data = tmp_path / "imdb"
    data.mkdir()
    train, (test_texts, test_labels) = make_reviews(60, 0), make_reviews(20, 1)
    test = ([f"kangaroo {t}" for t in test_texts], test_labels)  # a word only the test reviews have
    unlabeled = [f"an unlabeled review about the zebra number {i}" for i in range(10)] + test[0][:3]
    for split, (texts, labels) in {"train": train, "test": test, "unsupervised": (unlabeled, [-1] * 13)}.items():
        table = pa.table({"text": texts, "label": pa.array(labels, pa.int64())})
        pq.write_table(table, data / f"{split}-00000-of-00001.parquet")
    out = tmp_path / "vectors" / "w2v.txt"
    args = ["--out", str(out), "--dim", "4", "--epochs", "1", "--workers", "1"]
    proc = run_script(SCRIPT, *args, f"data.path={data}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["classifier_train_documents"] == 48 and summary["unlabeled_documents"] == 13  # val_fraction 0.2
    assert summary["duplicates_dropped"] == 3 and summary["documents"] == 48 + 10
    found = read_vectors(out, {"zebra", "great", "the", "kangaroo", "<unk>", "<pad>", "<eos>"})
    assert found.dim == 4 and set(found.vectors) == {"zebra", "great", "the"}
    again = run_script(SCRIPT, *args, cwd=tmp_path)
    assert again.returncode == 2 and f"error: {out} exists" in again.stderr
    wrong = run_script(SCRIPT, "--out", str(tmp_path / "other.txt"), "model.lr=1", cwd=tmp_path)
    assert wrong.returncode == 2 and "only data=..., data.* and lm_data.* settings choose the text" in wrong.stderr
