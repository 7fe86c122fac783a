"""seqsent.explain: integrated-gradients word attributions that sum to the score difference from the padding
baseline, put a trained model's cue words first, work for every encoder and for more classes, and reach
the command line as HTML and JSON (one-line errors for bad input)."""

from __future__ import annotations

import importlib.util
import inspect
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import TOPICS, run_module

from seqsent import explain
from seqsent.data.batching import Collator
from seqsent.data.synthetic import FILLERS, NEGATIVE, POSITIVE, make_reviews
from seqsent.data.vocab import PAD_ID, encode, tokenizer_from_json, train_tokenizer
from seqsent.errors import SeqsentError
from seqsent.models import ENCODERS, SequenceClassifier
from seqsent.models.classifier import FORMAT, FORMAT_KEY, PREPROCESSING_KEY
from seqsent.predict import predict_texts

needs_captum = pytest.mark.skipif(
    importlib.util.find_spec("captum") is None, reason="needs captum: pip install 'seqsent[explain]'"
)
MAX_LEN = 64
CUES = set(POSITIVE + NEGATIVE)
RECURRENT = {"hidden_size": 16, "bidirectional": True, "pooling": "max"}  # the default recipe's shape, small


def trained(texts: list[str], labels: list[int], names: list[str], encoder: dict, steps: int) -> SequenceClassifier:
    """A small classifier with bigram vectors trained on `texts` (AdamW, batches of 32), in eval mode,
    carrying its vocabulary as a checkpoint does."""
    tokenizer = train_tokenizer(texts, vocab_size=400)
    ids, offsets = encode(tokenizer, texts)
    torch.manual_seed(0)
    model = SequenceClassifier(
        vocab_size=400, embed_dim=16, num_classes=len(names), encoder=encoder, bigram_buckets=64, bigram_dim=8,
        dropout=0.3, embed_dropout=0.3,
    )  # fmt: skip
    model.preprocessing = {
        "tokenizer_json": tokenizer.to_str(), "max_len": MAX_LEN, "padding": "pre", "truncation": "pre",
        "pad_id": PAD_ID, "label_names": names,
    }  # fmt: skip
    collate, rng = Collator(MAX_LEN), np.random.default_rng(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.01)
    for _ in range(steps):
        batch = collate([(ids[offsets[i] : offsets[i + 1]], labels[i]) for i in rng.choice(len(texts), 32)])
        logits = model(batch["tokens"], batch["lengths"])
        loss = model.loss_fn(logits, batch["labels"] if model.binary else batch["labels"].long())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def cue_reviews(n: int, seed: int) -> list[str]:
    """`n` reviews of 15 filler words and two different cue words of one polarity (alternating)."""
    rng = np.random.default_rng(seed)
    reviews = []
    for i in range(n):
        words = [str(w) for w in rng.choice(FILLERS, size=15)]
        for cue in rng.choice(POSITIVE if i % 2 else NEGATIVE, size=2, replace=False):
            words.insert(int(rng.integers(0, len(words) + 1)), str(cue))
        reviews.append(" ".join(words))
    return reviews


@pytest.fixture(scope="module")
def binary() -> SequenceClassifier:
    """A bidirectional LSTM (max pooling, bigrams) trained on reviews labeled by their cue words (about 4 s)."""
    texts, labels = make_reviews(2000, seed=0, min_words=10, max_words=40)
    model = trained(texts, labels, ["negative", "positive"], {"name": "lstm", **RECURRENT}, steps=500)
    test_texts, test_labels = make_reviews(200, seed=5, min_words=10, max_words=40)
    predicted = [int(p > 0.5) for p in predict_texts(model, test_texts)]
    assert np.mean(np.equal(predicted, test_labels)) > 0.95  # accurate: its attributions mean something
    return model


def scores(model: SequenceClassifier, text: str, target: int) -> tuple[float, float]:
    """The explained class's score on `text` and on the all-padding review of its length, from the model itself."""
    ids, _ = encode(tokenizer_from_json(model.preprocessing["tokenizer_json"]), [text])
    batch = Collator(MAX_LEN)([(ids, 0)])
    with torch.no_grad():
        review = model(batch["tokens"], batch["lengths"])[0]
        baseline = model(torch.full_like(batch["tokens"], PAD_ID), batch["lengths"])[0]
    if review.dim() == 0:  # one logit: class 1's log-odds, class 0's negated
        return (float(review), float(baseline)) if target == 1 else (-float(review), -float(baseline))
    return float(review[target]), float(baseline[target])


@needs_captum
def test_attributions_sum_to_the_score_difference_from_the_baseline(binary: SequenceClassifier) -> None:
    """Completeness: attributions add up to score(review) - score(all padding). Max pooling makes the score along
    the path change abruptly where the maximum moves, so the integral needs many steps (300 were 7% off on one CPU)."""
    reviews = cue_reviews(10, seed=1)
    for target in (None, 0):
        for review, found in zip(reviews, explain.explain_texts(binary, reviews, target=target, n_steps=1000)):
            explained = found.prediction if target is None else target
            score, baseline = scores(binary, review, explained)
            assert found.target == explained and found.score == pytest.approx(score, abs=1e-5)
            assert len(found.tokens) == len(found.attributions) == 17
            difference = score - baseline
            assert abs(difference) > 1  # the check below is not trivially met
            assert sum(found.attributions) == pytest.approx(difference, rel=0.02, abs=1e-3)
            assert found.delta == pytest.approx(sum(found.attributions) - difference, abs=1e-4)


@needs_captum
def test_cue_words_get_the_largest_attributions(binary: SequenceClassifier) -> None:
    found = explain.explain_texts(binary, cue_reviews(20, seed=1), n_steps=100)
    first_two = [{e.tokens[i] for i in np.argsort(np.abs(e.attributions))[-2:]} for e in found]
    assert all(e.tokens[int(np.argmax(np.abs(e.attributions)))] in CUES for e in found)
    assert sum(top <= CUES for top in first_two) >= 18, first_two
    for e in found:  # the predicted class is explained: its cue words push towards it
        assert e.prediction == (e.tokens[int(np.argmax(np.abs(e.attributions)))] in POSITIVE)
        assert all(a > 0 for t, a in zip(e.tokens, e.attributions) if t in CUES)


NGRAMS = {"bigram_buckets": 50, "trigram_buckets": 50, "bigram_dim": 4}
SMALL = {"hidden_size": 8, "channels": 4, "d_model": 8, "num_heads": 2, "ff_size": 16}  # those an encoder takes


def small(name: str) -> dict:
    """Registered encoder `name` with the `SMALL` sizes it takes."""
    return {"name": name, **{k: v for k, v in SMALL.items() if k in inspect.signature(ENCODERS[name]).parameters}}


CASES = {  # id: (encoder settings, network settings, classes)
    **{name: (small(name), {}, 2) for name in ENCODERS},
    "lstm-unmasked-ngrams": ({"name": "lstm", "hidden_size": 8}, {"unmasked_len": 20, **NGRAMS}, 2),
    "gru-bi-3class": ({"name": "gru", "hidden_size": 8, "bidirectional": True}, NGRAMS, 3),
    "transformer-4class": ({"name": "transformer", "d_model": 8, "num_heads": 2, "ff_size": 16}, {}, 4),
}


@needs_captum
@pytest.mark.parametrize("case", sorted(CASES))
def test_every_encoder_is_explained_completely(case: str) -> None:
    encoder, settings, classes = CASES[case]
    texts = ["A wonderful , superb film .", "Dull and awful ; the worst ending of the year " * 3]  # 6, 30 tokens
    torch.manual_seed(0)
    model = SequenceClassifier(vocab_size=60, embed_dim=8, num_classes=classes, encoder=encoder, **settings).eval()
    tokenizer = train_tokenizer(make_reviews(100, seed=0)[0] + texts, vocab_size=60)
    model.preprocessing = {"tokenizer_json": tokenizer.to_str(), "max_len": 25, "padding": "post", "truncation": "pre",
                           "pad_id": PAD_ID, "label_names": None}  # fmt: skip
    found = explain.explain_texts(model, texts, target=classes - 1, n_steps=100)
    whole = explain.explain_texts(model, texts, target=classes - 1, n_steps=100, batch_size=7)  # 15 passes each
    read = settings.get("unmasked_len", 25)  # the last 25 tokens (max_len 25, truncation pre); unmasked: last 20
    assert [e.tokens for e in found] == [texts[0].split(), texts[1].split()[-read:]]
    assert [e.truncated for e in found] == [False, True]
    for e, again in zip(found, whole):
        assert abs(e.delta) <= 0.02 * abs(e.score - e.baseline_score) + 1e-4
        assert np.allclose(e.attributions, again.attributions, atol=1e-5)
        assert len(e.probabilities) == classes and e.target == classes - 1


def topic_reviews(n: int, seed: int) -> tuple[list[str], list[int]]:
    """Three topics told apart by one topic word among six filler words."""
    rng = np.random.default_rng(seed)
    topics = list(TOPICS)
    texts = [" ".join([*rng.choice(FILLERS, size=6), rng.choice(TOPICS[topics[i % 3]].split())]) for i in range(n)]
    return [" ".join(rng.permutation(t.split())) for t in texts], [i % 3 for i in range(n)]


@needs_captum
def test_a_multiclass_model_puts_its_topic_word_first() -> None:
    texts, labels = topic_reviews(600, seed=0)
    model = trained(texts, labels, list(TOPICS), {"name": "gru", **RECURRENT}, steps=150)
    reviews, truth = topic_reviews(12, seed=1)
    found = explain.explain_texts(model, reviews, n_steps=100)
    assert [e.prediction for e in found] == truth
    topic_words = {w for words in TOPICS.values() for w in words.split()}
    assert all(e.tokens[int(np.argmax(e.attributions))] in topic_words for e in found)
    other = explain.explain_texts(model, reviews[:1], target="food" if truth[0] != 2 else "city", n_steps=100)[0]
    assert other.target != truth[0] and len(other.probabilities) == 3
    for e in [*found, other]:
        assert abs(e.delta) <= 0.02 * abs(e.score - e.baseline_score) + 1e-3


def save(model: SequenceClassifier, path: Path) -> Path:
    torch.save(
        {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams), FORMAT_KEY: FORMAT,
         PREPROCESSING_KEY: model.preprocessing},
        path,
    )  # fmt: skip
    return path


def run_main(args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> str:
    """stderr of `python -m seqsent.explain <args>` run in this process, which must exit with a user error."""
    monkeypatch.setattr(sys, "argv", ["seqsent.explain", *args])
    with pytest.raises(SystemExit) as exit_info:
        explain.main()
    assert exit_info.value.code == 2
    return capsys.readouterr().err


@needs_captum
def test_command_line_writes_the_html_page_and_json(binary, tmp_path: Path, monkeypatch, capsys) -> None:
    ckpt = save(binary, tmp_path / "model.ckpt")
    (tmp_path / "reviews.txt").write_text("\n".join(cue_reviews(3, seed=2)) + "\n")
    review = "It's superb, (truly) = brilliant <b>& 'great'</b>"  # Hydra would not parse this unquoted
    out = tmp_path / "explained"
    proc = run_module("seqsent.explain", f"ckpt_path={ckpt}", f"text={review}", f"file={tmp_path / 'reviews.txt'}",
                      "n_steps=20", f"out={out}")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"{out / 'explain.html'}\n  {out / 'explain.json'}" in proc.stdout and "4 review(s)" in proc.stdout
    assert "explained 4/4 reviews" in proc.stderr
    result = json.loads((out / "explain.json").read_text())
    assert result["n_steps"] == 20 and result["label_names"] == ["negative", "positive"]
    first = result["reviews"][0]
    assert first["text"] == review and first["tokens"][:4] == ["It", "'", "s", "superb"]
    assert first["prediction"] == first["target"] == 1 and sum(first["probabilities"]) == pytest.approx(1)
    assert len(first["attributions"]) == len(first["tokens"]) and "delta" in first
    page = (out / "explain.html").read_text()
    assert page.count('class="review"') == 4 and "superb</span>" in page and "&lt;b&gt;" not in page
    assert "&amp;" in page and "<script" not in page and "http" not in page.replace("http-equiv", "")
    again = run_main([f"ckpt_path={ckpt}", "text=Great.", f"out={out}"], monkeypatch, capsys)
    assert "already holds a run or explanation (explain.html, explain.json)" in again


def test_bad_input_is_a_one_line_error(binary, tmp_path: Path, monkeypatch, capsys) -> None:
    ckpt = save(binary, tmp_path / "model.ckpt")
    cases = {
        ("ckpt_path=missing.ckpt", "text=Great."): "checkpoint missing.ckpt does not exist",
        (f"ckpt_path={ckpt}", "text=  "): "text= is empty",
        (f"ckpt_path={ckpt}",): "no review given: python -m seqsent.explain ckpt_path=",
        ("text=Great.",): "no checkpoint given: python -m seqsent.explain ckpt_path=",
        (f"ckpt_path={ckpt}", "text=Great.", "target=neutral"): "target='neutral': use a class id 0..1",
        (f"ckpt_path={ckpt}", "text=Great.", "n_steps=0"): "n_steps=0: use a whole number >= 1",
        (f"ckpt_path={ckpt}", "text=Great.", "n_steps=many"): "n_steps='many': use a whole number",
        (f"ckpt_path={ckpt}", "text=Great.", "device=abacus"): "device=abacus is not a device",
        (f"ckpt_path={ckpt}", f"file={tmp_path / 'none.txt'}"): "review file",
    }
    for args, message in cases.items():
        err = run_main(list(args), monkeypatch, capsys)
        assert err.startswith("error: ") and message in err and err.count("\n") == 1, err
    for name in ("captum", "captum.attr"):  # as without the extra
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(SeqsentError, match=r"needs captum: pip install 'seqsent\[explain\]'"):
        explain.explain_texts(binary, ["Great."])
