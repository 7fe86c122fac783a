"""Any text-classification dataset: local CSV/JSON-lines/parquet files with their own column names, more than
two classes, ClassLabel and string labels, an official validation split, Hub data; the cache key; bad input."""

from __future__ import annotations

import csv
import inspect
import json
from pathlib import Path

import datasets
import numpy as np
import pytest
from helpers import TINY_BIGRAMS, run_module
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from seqsent.data import IMDBDataModule, TextClassificationDataModule, sources
from seqsent.data.cache import cache_key
from seqsent.data.datamodule import KEYED_WHEN_SET, NOT_IN_CACHE_KEY
from seqsent.data.soft_labels import write_soft_labels
from seqsent.errors import SeqsentError
from seqsent.utils import config_dir, register_resolvers

TOPICS = {"sport": "goal match team", "politics": "vote law party", "tech": "chip code robot"}


def topic_rows(n: int, seed: int) -> list[tuple[str, str]]:
    """`n` (text, topic) rows: each text holds its topic's words among filler."""
    rng = np.random.default_rng(seed)
    names = sorted(TOPICS)
    rows = []
    for i in range(n):
        topic = names[i % len(names)]
        words = [*TOPICS[topic].split(), *rng.choice(["the", "a", "of", "new", "big"], size=4)]
        rows.append((" ".join(rng.permutation(words)), topic))
    return rows


def write_csv(file: Path, header: tuple[str, str], rows: list[tuple]) -> None:
    file.parent.mkdir(parents=True, exist_ok=True)
    with file.open("w", newline="") as f:
        csv.writer(f).writerows([header, *rows])


def write_jsonl(file: Path, rows: list[dict]) -> None:
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text("".join(json.dumps(row) + "\n" for row in rows))


def write_classlabel_parquet(file: Path, texts: list[str], labels: list[int], names: list[str]) -> None:
    """A Hub-style parquet file: the label column a ClassLabel with `names` (in the schema's metadata)."""
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=names)})
    file.parent.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_dict({"text": texts, "label": labels}, features=features).to_parquet(str(file))


def classlabel_dir(root: Path, splits: dict[str, int], names: list[str] = ("ABBR", "DESC", "HUM")) -> Path:
    for split, n in splits.items():
        texts = [f"{split} question {i} about {names[i % len(names)].lower()}" for i in range(n)]
        write_classlabel_parquet(root / f"{split}.parquet", texts, [i % len(names) for i in range(n)], list(names))
    return root


def set_up(path: Path, **kwargs) -> TextClassificationDataModule:
    dm = TextClassificationDataModule(path=str(path), vocab_size=100, max_len=20, batch_size=8, **kwargs)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def error(path: Path, **kwargs) -> str:
    """The one-line `SeqsentError` of setting up a data module on `path`."""
    with pytest.raises(SeqsentError) as info:
        set_up(path, **kwargs)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_a_csv_directory_with_other_column_names_loads_with_three_settings(tmp_path: Path) -> None:
    """The acceptance command's data: `data.path=... data.text_column=... data.label_column=...` and nothing
    else; string labels become classes in sorted order, three of them."""
    data = tmp_path / "news"
    write_csv(data / "train.csv", ("headline", "topic"), topic_rows(60, seed=0))
    write_csv(data / "test.csv", ("headline", "topic"), topic_rows(15, seed=1))
    register_resolvers()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("train", [f"data.path={data}", "data.text_column=headline", "data.label_column=topic"])
    dm = instantiate(cfg.data)
    dm.prepare_data()
    dm.setup("fit")
    assert dm.num_classes == 3 and dm.label_names == ["politics", "sport", "tech"]
    assert (len(dm.train_set) + len(dm.val_set), len(dm.test_set)) == (60, 15)
    batch = next(iter(dm.train_dataloader()))
    assert batch["tokens"].shape[0] == len(batch["labels"]) and set(batch["labels"].tolist()) <= {0.0, 1.0, 2.0}
    assert dm.preprocessing()["label_names"] == dm.label_names
    first = topic_rows(15, seed=1)[0]
    assert dm.test_set[0][1] == dm.label_names.index(first[1])  # row order and label kept


def test_seqsent_train_on_the_csv_directory(tmp_path: Path) -> None:
    """The acceptance command: the default recipe on a new dataset, three data settings on the command line."""
    data = tmp_path / "news"
    write_csv(data / "train.csv", ("headline", "topic"), topic_rows(120, seed=0))
    write_csv(data / "test.csv", ("headline", "topic"), topic_rows(30, seed=1))
    run = tmp_path / "run"
    data_args = [f"data.path={data}", "data.text_column=headline", "data.label_column=topic"]
    proc = run_module("seqsent.train", *data_args, "trainer.max_epochs=1", TINY_BIGRAMS, f"hydra.run.dir={run}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0 <= metrics["test/acc"] <= 1 and "test/f1" in metrics


def test_json_lines_shards_are_read_together(tmp_path: Path) -> None:
    rows = [{"body": f"text {i} word{i % 4}", "y": i % 4} for i in range(40)]
    write_jsonl(tmp_path / "d" / "train-00000-of-00002.jsonl", rows[:25])
    write_jsonl(tmp_path / "d" / "train-00001-of-00002.jsonl", rows[25:])
    write_jsonl(tmp_path / "d" / "test.jsonl", rows[:8])
    dm = set_up(tmp_path / "d", text_column="body", label_column="y")
    assert len(dm.train_set) + len(dm.val_set) == 40 and len(dm.test_set) == 8
    assert dm.num_classes == 4 and dm.label_names == ["0", "1", "2", "3"]  # whole numbers: no names


def test_classlabel_names_and_the_official_validation_split(tmp_path: Path) -> None:
    data = classlabel_dir(tmp_path / "d", {"train": 30, "validation": 9, "test": 6})
    dm = set_up(data)
    assert dm.label_names == ["ABBR", "DESC", "HUM"] and dm.num_classes == 3
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (30, 9, 6)  # all of train trains
    vocab = json.loads(dm.tokenizer_json)["model"]["vocab"]
    assert "train" in vocab and "validation" not in vocab  # the vocabulary is the training split's
    assert "val 9 (validation)" in dm.summary() and "3 classes" in dm.summary()
    fraction = set_up(data, val_split=None, val_fraction=0.2)  # null: a fraction of train, as without one
    assert (len(fraction.train_set), len(fraction.val_set)) == (24, 6) and "0.2 of train" in fraction.summary()


def test_other_split_names(tmp_path: Path) -> None:
    data = classlabel_dir(tmp_path / "d", {"fit": 20, "dev": 5, "eval": 4})
    dm = set_up(data, train_split="fit", val_split="dev", test_split="eval")
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (20, 5, 4)


def test_hub_data_with_a_config_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Hub id: `datasets.load_dataset(id, config)` once, its splits picked by name (no network here)."""
    calls = []
    features = datasets.Features({"sentence": datasets.Value("string"), "label": datasets.ClassLabel(names=["n", "p"])})
    split = datasets.Dataset.from_dict({"sentence": ["good", "bad", "fine", "awful"], "label": [1, 0, 1, 0]}, features)

    def load_dataset(path: str, name: str | None = None) -> datasets.DatasetDict:
        calls.append((path, name))
        return datasets.DatasetDict({"train": split, "validation": split})

    monkeypatch.setattr(sources, "_hub_reachable", lambda *a, **k: True)
    monkeypatch.setattr(sources.datasets, "load_dataset", load_dataset)
    dm = set_up(Path("glue/sst2"), hub_config="sst2", text_column="sentence", test_split="validation", val_split=None)
    assert calls[0] == ("glue/sst2", "sst2") and dm.label_names == ["n", "p"] and len(dm.test_set) == 4
    message = error(Path("glue/sst2"), hub_config="sst2", text_column="sentence")
    assert "'glue/sst2' (config 'sst2') has no 'test' split (it has ['train', 'validation'])" in message
    assert "data.test_split" in message


def test_cache_key_holds_every_setting_but_the_loader_ones(tmp_path: Path) -> None:
    """Every `__init__` argument is in the key, or named in NOT_IN_CACHE_KEY, or in KEYED_WHEN_SET and at its
    value there; changing one in the key changes the entry: a new setting is in the key unless someone says it
    does not change the data."""
    params = [p for p in inspect.signature(TextClassificationDataModule.__init__).parameters if p != "self"]
    changed = {
        "path": "elsewhere",
        "vocab_size": 50,
        "min_frequency": 2,
        "punctuation": "drop",
        "detokenize": "ptb",
        "val_fraction": 0.1,
        "split_seed": 1,
        "tokenizer_json": "{}",
        "text_column": "sentence",
        "label_column": "y",
        "train_split": "fit",
        "val_split": None,
        "test_split": "eval",
        "hub_config": "plain_text",
        "num_classes": 3,
    }
    base = TextClassificationDataModule(path="data")
    assert set(base.cache_settings()) | set(NOT_IN_CACHE_KEY) | set(KEYED_WHEN_SET) == set(params)
    assert set(base.cache_settings()) | set(KEYED_WHEN_SET) == set(changed)  # a new key setting: a changed value here
    key = cache_key({"train": "f"}, base.cache_settings())
    for name, value in changed.items():
        other = TextClassificationDataModule(**{"path": "data", name: value})
        assert cache_key({"train": "f"}, other.cache_settings()) != key, name
    loader = {"max_len": 9, "batch_size": 3, "bucket": True, "cache_dir": str(tmp_path), "padding": "post"}
    same = TextClassificationDataModule(path="data", **loader)
    assert cache_key({"train": "f"}, same.cache_settings()) == key
    assert cache_key({"train": "g"}, base.cache_settings()) != key


def test_the_cache_entry_keeps_the_class_names(tmp_path: Path) -> None:
    data = classlabel_dir(tmp_path / "d", {"train": 12, "test": 6})
    first = set_up(data, cache_dir=str(tmp_path / "c"))
    meta = json.loads((first.data.directory / "meta.json").read_text())
    assert meta["label_names"] == ["ABBR", "DESC", "HUM"] and meta["num_classes"] == 3
    again = set_up(data, cache_dir=str(tmp_path / "c"))
    assert not again.data.built and again.label_names == first.label_names


# -- bad input: one line naming the file and the fix ------------------------------------------------------


def test_unknown_columns_list_the_columns_found(tmp_path: Path) -> None:
    write_csv(tmp_path / "d" / "train.csv", ("sentence", "label"), [("a b", 0), ("c d", 1)] * 5)
    write_csv(tmp_path / "d" / "test.csv", ("sentence", "label"), [("a b", 0), ("c d", 1)])
    message = error(tmp_path / "d")
    assert "train.csv has no 'text' column (found ['sentence', 'label']): set data.text_column" in message
    message = error(tmp_path / "d", text_column="sentence", label_column="topic")
    assert "no 'topic' column" in message and "data.label_column" in message


@pytest.mark.parametrize(
    "labels,kwargs,fragment",
    [
        ([0, 1, 2, 5] * 3, {"num_classes": 3}, "labels [5] in the train split: labels must be 0, 1 or 2"),
        ([0, 1, -2] * 4, {}, "labels [-2] in the train split"),
        ([0, 1, 2] * 4, {"num_classes": 2}, "labels [2] in the train split: labels must be 0 or 1"),
    ],
)
def test_labels_out_of_range(tmp_path: Path, labels: list[int], kwargs: dict, fragment: str) -> None:
    write_csv(tmp_path / "d" / "train.csv", ("text", "label"), [(f"t {i}", y) for i, y in enumerate(labels)])
    write_csv(tmp_path / "d" / "test.csv", ("text", "label"), [("t", 0)])
    message = error(tmp_path / "d", **kwargs)
    assert "train.csv" in message and fragment in message


def test_classlabel_ids_out_of_range_and_unlabeled_test_splits(tmp_path: Path) -> None:
    data = classlabel_dir(tmp_path / "d", {"train": 12})
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.Value("int64")})
    test = datasets.Dataset.from_dict({"text": ["a", "b"], "label": [0, 3]}, features)
    test.to_parquet(str(data / "test.parquet"))
    message = error(data)
    assert "test.parquet has labels [3] in the test split: labels must be 0 (ABBR), 1 (DESC) or 2 (HUM)" in message
    datasets.Dataset.from_dict({"text": ["a", "b"], "label": [-1, -1]}, features).to_parquet(str(data / "test.parquet"))
    assert "-1 marks an unlabeled split: set data.test_split to a split it has" in error(data, cache_dir="other")


def test_a_class_count_that_disagrees_with_the_data(tmp_path: Path) -> None:
    data = classlabel_dir(tmp_path / "d", {"train": 12, "test": 6})
    message = error(data, num_classes=4)
    assert "data.num_classes=4, but" in message and "has 3 classes (ABBR, DESC, HUM)" in message
    assert "train.parquet" in message and "set data.num_classes=3 or null" in message
    imdb = error_of(IMDBDataModule, data)  # the preset is binary unless told otherwise
    assert "data.num_classes=2, but" in imdb


def error_of(cls: type, path: Path, **kwargs) -> str:
    with pytest.raises(SeqsentError) as info:
        cls(path=str(path), vocab_size=50, **kwargs).setup()
    return str(info.value)


def test_string_labels_unseen_in_training(tmp_path: Path) -> None:
    write_csv(tmp_path / "d" / "train.csv", ("text", "label"), topic_rows(12, 0))
    write_csv(tmp_path / "d" / "test.csv", ("text", "label"), [("x", "sport"), ("y", "weather")])
    message = error(tmp_path / "d")
    assert "test.csv has labels ['weather'] in the test split that the training split does not have" in message


def test_a_missing_split_names_its_setting(tmp_path: Path) -> None:
    write_csv(tmp_path / "d" / "train.csv", ("text", "label"), topic_rows(12, 0))
    message = error(tmp_path / "d", test_split="eval")
    assert "no eval-*.parquet" in message and "set data.test_split to a split it has" in message


def test_a_split_in_two_formats(tmp_path: Path) -> None:
    write_csv(tmp_path / "d" / "train.csv", ("text", "label"), topic_rows(12, 0))
    write_jsonl(tmp_path / "d" / "train.jsonl", [{"text": "a", "label": "sport"}])
    write_csv(tmp_path / "d" / "test.csv", ("text", "label"), topic_rows(3, 0))
    assert "holds the train split in several formats (train.csv, train.jsonl): keep one" in error(tmp_path / "d")


def test_soft_labels_need_two_classes(tmp_path: Path) -> None:
    write_csv(tmp_path / "d" / "train.csv", ("text", "label"), topic_rows(12, 0))
    write_csv(tmp_path / "d" / "test.csv", ("text", "label"), topic_rows(3, 0))
    soft = tmp_path / "soft.parquet"
    write_soft_labels(soft, ["new text"], np.array([0.5]), {})
    assert "has 3 classes, and soft labels" in error(tmp_path / "d", soft_labels=str(soft))
    with pytest.raises(SeqsentError, match="soft labels are for two classes only"):
        TextClassificationDataModule(path="x", soft_labels=str(soft), num_classes=3)


def test_a_class_without_training_texts_warns(tmp_path: Path) -> None:
    write_csv(tmp_path / "d" / "train.csv", ("text", "label"), [(f"t {i}", i % 2) for i in range(20)])
    write_csv(tmp_path / "d" / "test.csv", ("text", "label"), [("t", 2), ("u", 0)])
    with pytest.warns(UserWarning, match="no training text of .* has the class 2: the model cannot learn it"):
        dm = set_up(tmp_path / "d", num_classes=3)
    assert dm.num_classes == 3 and dm.label_names == ["0", "1", "2"]
