"""seqsent.export, seqsent.serve_onnx and seqsent.pretrained: every encoder exports with a free batch size
and length, the torch-free predictor gives seqsent.predict's probabilities (max |difference| <= 1e-4), and
a pretrained folder gives the classifier back."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from seqsent import export, pretrained, serve_onnx
from seqsent.data.synthetic import make_reviews
from seqsent.data.vocab import PAD_ID, train_tokenizer
from seqsent.errors import SeqsentError
from seqsent.models import SequenceClassifier
from seqsent.models.classifier import FORMAT, FORMAT_KEY, PREPROCESSING_KEY
from seqsent.predict import predict_texts
from seqsent.reliability import DATA_KEY

needs_onnxruntime = pytest.mark.skipif(
    importlib.util.find_spec("onnxruntime") is None, reason="needs onnxruntime: pip install 'seqsent[export]'"
)

MAX_LEN = 30
TEXTS = [
    *make_reviews(185, seed=3, min_words=1, max_words=60)[0],  # shorter and longer than MAX_LEN tokens
    "",
    "<br />",
    "!!!",
    "Zyzzyva qwerty.",
    "great " * 200,
    *(f"film {'good ' * n}end" for n in range(10)),
]
RNN = {"hidden_size": 8}
TRANSFORMER = {"name": "transformer", "d_model": 8, "num_heads": 2, "ff_size": 16}
NGRAMS = {"bigram_buckets": 50, "trigram_buckets": 50, "bigram_dim": 4}
CASES = {  # id: (encoder, network settings, classes, padding, truncation)
    "lstm-binary-pre": ({"name": "lstm", **RNN}, {}, 2, "pre", "pre"),
    "gru-bi-2-3class-post": (
        {"name": "gru", **RNN, "bidirectional": True, "num_layers": 2},
        {},
        3,
        "post",
        "post",
    ),
    "rnn-mean-binary-post": ({"name": "rnn", **RNN, "pooling": "mean"}, {}, 2, "post", "pre"),
    "lstm_scratch-bi-4class-pre": ({"name": "lstm_scratch", **RNN, "bidirectional": True}, {}, 4, "pre", "post"),
    "lstm-unmasked-ngrams-binary-pre": ({"name": "lstm", **RNN}, {"unmasked_len": 40, **NGRAMS}, 2, "pre", "pre"),
    "cnn-3class-post": ({"name": "cnn", "channels": 4}, {}, 3, "post", "post"),
    "transformer-cls-binary-post": ({**TRANSFORMER, "pooling": "cls"}, {}, 2, "post", "pre"),
    "transformer-sin-3class-pre": ({**TRANSFORMER, "positions": "sinusoidal"}, {}, 3, "pre", "pre"),
    "nbow-mean_max-3class-pre": ({"name": "nbow", "pooling": "mean_max"}, NGRAMS, 3, "pre", "post"),
}


@pytest.fixture(scope="module")
def tokenizer_json() -> str:
    return train_tokenizer(make_reviews(100, seed=0)[0], vocab_size=60).to_str()


def classifier(tokenizer_json: str, case: str) -> SequenceClassifier:
    """A seeded untrained classifier of `case`, carrying a vocabulary as a checkpoint does; its head is
    scaled up so that its probabilities spread (but do not saturate)."""
    encoder, settings, classes, padding, truncation = CASES[case]
    torch.manual_seed(0)
    model = SequenceClassifier(vocab_size=60, embed_dim=8, num_classes=classes, encoder=encoder, **settings).eval()
    with torch.no_grad():
        model.net.head[1].weight.mul_(3)
    names = ["neg", "pos"] if classes == 2 else [f"topic{c}" for c in range(classes)]
    model.preprocessing = {
        "tokenizer_json": tokenizer_json, "max_len": MAX_LEN, "padding": padding, "truncation": truncation,
        "pad_id": PAD_ID, "label_names": names,
    }  # fmt: skip
    return model


@needs_onnxruntime
@pytest.mark.parametrize("case", sorted(CASES))
def test_onnx_predictor_gives_seqsent_predict_probabilities(tokenizer_json: str, case: str, tmp_path: Path) -> None:
    model = classifier(tokenizer_json, case)
    export.export(model, "onnx", tmp_path)
    expected = np.asarray(predict_texts(model, TEXTS, batch_size=64))
    got = serve_onnx.OnnxPredictor(tmp_path).predict(TEXTS, batch_size=50)
    assert got.shape == expected.shape == ((200,) if model.hparams.num_classes == 2 else (200, CASES[case][2]))
    assert np.abs(got - expected).max() <= 1e-4
    assert expected.std(axis=0).max() > 0.01  # the texts are told apart: a mismatch would show


@pytest.mark.parametrize("case", sorted(CASES))
def test_torch_export_program_takes_any_batch_and_length(tokenizer_json: str, case: str, tmp_path: Path) -> None:
    model = classifier(tokenizer_json, case)
    path = export.export(model, "torch_export", tmp_path)
    program = torch.export.load(str(path)).module()
    for batch, steps in ((1, 1), (3, MAX_LEN), (70, 9)):
        tokens, lengths = export.example_batch(model, batch, steps, seed=batch)
        expected = model.probabilities(model(tokens, lengths))
        assert (program(tokens, lengths) - expected).abs().max().item() <= 1e-5


@needs_onnxruntime
def test_predictor_imports_no_torch(tokenizer_json: str, tmp_path: Path) -> None:
    """Run in a process where torch cannot be imported at all: same probabilities, no torch or lightning."""
    model = classifier(tokenizer_json, "lstm-binary-pre")
    export.export(model, "onnx", tmp_path)
    code = (
        "import json, sys; sys.modules['torch'] = None\n"
        "from seqsent.serve_onnx import OnnxPredictor\n"
        "probs = OnnxPredictor(sys.argv[1]).predict(json.loads(sys.argv[2]))\n"
        "loaded = {m.split('.')[0] for m, module in sys.modules.items() if module is not None}\n"
        "assert not loaded & {'torch', 'lightning'}, loaded\n"
        "print(json.dumps(probs.tolist()))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path), json.dumps(TEXTS[:20])], capture_output=True, text=True, check=True
    )
    expected = np.asarray(predict_texts(model, TEXTS[:20]))
    assert np.abs(np.asarray(json.loads(done.stdout)) - expected).max() <= 1e-4


@needs_onnxruntime
def test_export_and_serve_command_lines(tokenizer_json: str, tmp_path: Path, capsys) -> None:
    model = classifier(tokenizer_json, "cnn-3class-post")
    ckpt = tmp_path / "model.ckpt"
    torch.save(
        {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams), FORMAT_KEY: FORMAT,
         PREPROCESSING_KEY: model.preprocessing},
        ckpt,
    )  # fmt: skip
    out = tmp_path / "exported"
    export.run([f"ckpt_path={ckpt}", "format=onnx", f"out={out}"])
    assert sorted(p.name for p in out.iterdir()) == ["model.onnx", "preprocessing.json", "tokenizer.json"]
    settings = json.loads((out / "preprocessing.json").read_text())
    assert settings["label_names"] == ["topic0", "topic1", "topic2"] and settings["padding"] == "post"
    capsys.readouterr()
    serve_onnx.run([str(out), "text=A wonderful film.", "text=Dull."])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    expected = predict_texts(model, ["A wonderful film.", "Dull."])
    assert [line["label"] for line in lines] == [f"topic{int(np.argmax(p))}" for p in expected]
    assert np.abs(np.array([list(line["probabilities"].values()) for line in lines]) - expected).max() <= 1e-5


def test_pretrained_folder_round_trip_with_a_model_card(tokenizer_json: str, tmp_path: Path) -> None:
    """format=pretrained writes the Hub-style folder; from_pretrained gives the same classifier back."""
    model = classifier(tokenizer_json, "gru-bi-2-3class-post")
    model.data_settings = {"_target_": "seqsent.data.SyntheticDataModule", "path": None, "n_train": 240}
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    ckpt.parent.mkdir(parents=True)
    torch.save(
        {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams), FORMAT_KEY: FORMAT,
         PREPROCESSING_KEY: model.preprocessing, DATA_KEY: model.data_settings},
        ckpt,
    )  # fmt: skip
    (tmp_path / "run" / "metrics.json").write_text(json.dumps({"val/acc_best": 0.8125, "epochs": 2}))
    out = tmp_path / "my-model"
    export.run([f"ckpt_path={ckpt}", "format=pretrained", f"out={out}"])
    assert sorted(p.name for p in out.iterdir()) == sorted(pretrained.FILES)
    loaded = pretrained.from_pretrained(out)
    assert loaded.preprocessing == model.preprocessing and loaded.data_settings == model.data_settings
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
    assert predict_texts(loaded, TEXTS[:30]) == predict_texts(model, TEXTS[:30])
    card = (out / "README.md").read_text()
    for part in ("pipeline_tag: text-classification", "Dataset: SyntheticDataModule", "(topic0, topic1, topic2)",
                 '"name": "gru"', "| val/acc_best | 0.8125 |", "## Intended use"):  # fmt: skip
        assert part in card
    assert "epochs" not in card  # run facts that are not metrics stay off the card
    with pytest.raises(SeqsentError, match="does not exist: give a folder save_pretrained wrote"):
        pretrained.from_pretrained(tmp_path / "nowhere")
    again = SequenceClassifier.from_pretrained(loaded.save_pretrained(tmp_path / "again", {"test/acc": 0.75}))
    assert predict_texts(again, TEXTS[:30]) == predict_texts(model, TEXTS[:30])
    assert "| test/acc | 0.7500 |" in (tmp_path / "again" / "README.md").read_text()


@needs_onnxruntime
def test_inference_benchmark_prints_rates_of_the_three_runtimes() -> None:
    script = Path(__file__).parents[1] / "benchmarks" / "inference.py"
    done = subprocess.run(
        [sys.executable, str(script), "--reviews", "8", "--repeats", "1"], capture_output=True, text=True, check=True
    )
    result = json.loads(done.stdout)
    for runtime in ("torch_eager", "onnxruntime", "torch_export"):
        assert set(result["reviews_per_second"][runtime]) == {"batch_1", "batch_64"}
        assert all(rate > 0 for rate in result["reviews_per_second"][runtime].values())
    assert max(result["max_abs_difference"].values()) <= 1e-4


def test_onnx_without_the_export_extra_names_it(monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed
    monkeypatch.setattr(export, "load_classifier", lambda path: None)
    with pytest.raises(SystemExit):
        export.run(["ckpt_path=x.ckpt", "format=onnx", "out=o"])
    assert capsys.readouterr().err == "error: format=onnx needs onnx and onnxruntime: pip install 'seqsent[export]'\n"


@pytest.mark.parametrize(
    ("module", "argv", "message"),
    [
        (export, ["ckpt_path=x.ckpt", "format=tflite", "out=o"], "format=tflite: use one of"),
        (export, ["ckpt_path=x.ckpt"], "ckpt_path=, format= and out= are required"),
        (export, ["ckpt_path=missing.ckpt", "format=onnx", "out=o"], "missing.ckpt does not exist"),
        (serve_onnx, ["nowhere", "text=Good."], "nowhere/model.onnx does not exist"),
        (serve_onnx, ["text=Good."], "give the exported folder first"),
        (serve_onnx, ["dir", "txt=Good."], "unknown argument 'txt=Good.'"),
    ],
)
def test_user_errors_are_one_line(module, argv: list[str], message: str, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    if "format=tflite" in argv:
        monkeypatch.setattr(export, "load_classifier", lambda path: None)
    with pytest.raises(SystemExit) as exit_info:
        module.run(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
