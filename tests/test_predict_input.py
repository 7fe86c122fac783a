"""seqsent.predict's input and output: only a newline ends a review in a file, the output says what
its number is, and review text reaches the terminal without control characters."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest

from seqsent import predict
from seqsent.data import IMDBDataModule
from seqsent.data.synthetic import make_reviews, write_parquet_dir
from seqsent.models import SequenceClassifier


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> SequenceClassifier:
    """A tiny untrained classifier carrying a vocabulary, as a checkpoint would."""
    root = tmp_path_factory.mktemp("imdb")
    write_parquet_dir(root, {"train": make_reviews(40, 0), "test": make_reviews(10, 1)})
    dm = IMDBDataModule(path=str(root), vocab_size=50, max_len=30)
    dm.setup()
    net = SequenceClassifier(vocab_size=50, embed_dim=4, encoder={"name": "lstm", "hidden_size": 4}).eval()
    net.preprocessing = {k: v for k, v in dm.preprocessing().items() if k != "label_names"}  # as before issue 24
    return net


def predict_lines(model: SequenceClassifier, args: list[str], monkeypatch, capsys) -> list[str]:
    """stdout lines of `python -m seqsent.predict ckpt_path=... <args>` with `model` as the checkpoint."""
    monkeypatch.setattr(predict, "load_classifier", lambda path, map_location: model)
    predict.run(["ckpt_path=model.ckpt", *args])
    return capsys.readouterr().out.split("\n")[:-1]


def test_only_newlines_end_reviews_in_a_file(tmp_path: Path) -> None:
    """Form feed, \\x1c-\\x1e, NEL and U+2028/9 are characters of a review (str.splitlines would end
    lines there: 9 reviews from these 4); a CR before the newline is dropped, blank lines skipped."""
    file = tmp_path / "reviews.txt"
    text = "one\x0ctwo\r\nthree\x1cfour\x1dfive\x1esix\n\nseven\x85eight\u2028nine\u2029ten\r\nlast, no newline"
    file.write_bytes(text.encode())
    assert predict.read_reviews(str(file)) == [
        "one\x0ctwo",
        "three\x1cfour\x1dfive\x1esix",
        "seven\x85eight\u2028nine\u2029ten",
        "last, no newline",
    ]


def test_output_has_a_header_and_a_line_per_review(model, tmp_path: Path, monkeypatch, capsys) -> None:
    file = tmp_path / "reviews.txt"
    file.write_text("a good film\x0cwith a form feed\r\nbad\n")
    lines = predict_lines(model, ["text=Brilliant!", f"file={file}"], monkeypatch, capsys)
    assert lines[0] == "p(positive)\treview"
    assert [line.split("\t")[1] for line in lines[1:]] == ["Brilliant!", "a good film with a form feed", "bad"]
    assert all(0.0 <= float(line.split("\t")[0]) <= 1.0 for line in lines[1:])


def test_binary_header_names_class_1_and_multiclass_has_a_column_per_class(model, monkeypatch, capsys) -> None:
    """A two-class checkpoint with label names prints P(class 1) under its name; one of more classes
    prints every class's probability (summing to 1) under its name, in class order."""
    named = SequenceClassifier(vocab_size=50, embed_dim=4, encoder={"name": "nbow"}).eval()
    named.preprocessing = {**model.preprocessing, "label_names": ["neg", "pos"]}
    lines = predict_lines(named, ["text=Brilliant!"], monkeypatch, capsys)
    assert lines[0] == "p(pos)\treview" and len(lines[1].split("\t")) == 2
    names = ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]
    six = SequenceClassifier(vocab_size=50, num_classes=6, embed_dim=4, encoder={"name": "cnn", "channels": 3}).eval()
    six.preprocessing = {**model.preprocessing, "label_names": names}
    lines = predict_lines(six, ["text=Who wrote it?", "text=Where is it?"], monkeypatch, capsys)
    assert lines[0] == "\t".join([*(f"p({n})" for n in names), "review"])
    for line, text in zip(lines[1:], ["Who wrote it?", "Where is it?"]):
        *probs, shown = line.split("\t")
        assert shown == text and len(probs) == 6 and sum(map(float, probs)) == pytest.approx(1, abs=1e-3)


def test_review_text_reaches_the_terminal_without_control_characters(model, monkeypatch, capsys) -> None:
    """An escape sequence (clear screen, CSI), a bell, NUL, DEL and a bidi override in a review are
    shown escaped; the line holds no control character but its tab."""
    review = "evil\x1b[2J\x07 title\x00\x7f \x9b31m \u202egnirts"
    lines = predict_lines(model, [f"text={review}"], monkeypatch, capsys)
    shown = lines[1].split("\t", 1)[1]
    assert shown == "evil\\x1b[2J\\x07 title\\x00\\x7f \\x9b31m \\u202egnirts"
    assert not [c for c in lines[1] if unicodedata.category(c)[0] == "C" and c != "\t"]


def test_a_directory_as_the_review_file_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        predict.run(["ckpt_path=model.ckpt", f"file={tmp_path}"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.count("\n") == 1
    assert err == f"error: review file {tmp_path} is a directory: pass file=<text file, one review per line>\n"
