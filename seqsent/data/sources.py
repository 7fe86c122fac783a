"""Find and load text-classification splits with `datasets`: a Hub id (with an optional config name), a
local directory of parquet, CSV or JSON-lines split files, or an `aclImdb/` tree.

A local directory holds `<split>.<ext>` or `<split>-*.<ext>` files (shards, read together), `<ext>` one of
parquet, csv, jsonl, json. Labels become int64 class ids 0..C-1: a ClassLabel feature's ids (with its
names), whole numbers as they are (names "0".."C-1"), or strings numbered in the sorted order of the first
split's (the training split's) labels. Every problem with the data is a one-line `SeqsentError` naming the
file and the fix.
"""

from __future__ import annotations

import hashlib
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from omegaconf import OmegaConf

from seqsent.errors import SeqsentError

DEFAULT_HUB_ID = "stanfordnlp/imdb"
ENV_DIR = "SEQSENT_IMDB_DIR"
DATA_ENV = "SEQSENT_DATA_DIR"  # a root holding one directory per dataset: imdb/, sst2/, trec6/
FORMATS = {"parquet": "parquet", "csv": "csv", "jsonl": "json", "json": "json"}  # extension: `datasets` builder
UNLABELED = "unsupervised"  # IMDB's split of unlabeled reviews: every label is -1
ACL_NAMES = ["neg", "pos"]


def default_path(name: str = "imdb", hub_id: str = DEFAULT_HUB_ID) -> str:
    """Where dataset `name` is read from: `$SEQSENT_IMDB_DIR` (imdb only), else `$SEQSENT_DATA_DIR/<name>`
    when that variable is set, else the Hub id."""
    if name == "imdb" and os.environ.get(ENV_DIR):
        return os.environ[ENV_DIR]
    root = os.environ.get(DATA_ENV)
    return str(Path(root).expanduser() / name) if root else hub_id


def is_hub_id(path: str) -> bool:
    """`owner/name` that is no local path: read from the Hugging Face Hub."""
    parts = path.split("/")
    shaped = len(parts) == 2 and all(parts) and not path.startswith((".", "~"))
    return shaped and not Path(path).expanduser().exists()


def register_resolvers() -> None:
    """Config resolvers: `${data_path:NAME,HUB_ID}` is `default_path(NAME, HUB_ID)`;
    `${if_hub:PATH,HUB_VALUE,LOCAL_VALUE}` picks a setting by whether PATH is a Hub id (the Hub's copy of a
    dataset may name its columns and splits differently from the local one)."""
    if not OmegaConf.has_resolver("data_path"):
        OmegaConf.register_new_resolver("data_path", default_path)
    if not OmegaConf.has_resolver("if_hub"):
        OmegaConf.register_new_resolver("if_hub", lambda path, hub, local: hub if is_hub_id(str(path)) else local)


@dataclass(frozen=True)
class Source:
    """Where the data is and how to read it. `option` is the setting that names `path` in messages
    (`--data` in the scripts); `split_options` pairs a split with the setting that names it."""

    path: str
    text_column: str = "text"
    label_column: str = "label"
    hub_config: str | None = None
    num_classes: int | None = None
    option: str = "data.path"
    imdb_hints: bool = False  # path errors name $SEQSENT_IMDB_DIR and IMDB's layouts
    split_options: tuple[tuple[str, str], ...] = ()

    def hint(self) -> str:
        """The fix a path error names."""
        if self.imdb_hints:
            return f"set {ENV_DIR}=/path/to/imdb or {self.option}=/path/to/imdb (parquet files or aclImdb/)"
        return (
            f"set {self.option} to a Hub id or a directory of <split>.parquet, .csv or .jsonl files "
            f"(or ${DATA_ENV} to a directory holding the dataset's)"
        )

    def split_fix(self, split: str) -> str:
        setting = dict(self.split_options).get(split)
        if setting:
            return f"set {setting} to a split it has or point {self.option} elsewhere"
        return f"put the {split} split there or point {self.option} elsewhere"


@dataclass
class Split:
    """Texts and labels of one split, plus where they came from (for messages and cache keys)."""

    texts: list[str]
    labels: np.ndarray  # int64 class ids 0..C-1; -1 marks unlabeled texts (the unsupervised split)
    origin: str
    fingerprint: str
    label_names: list[str] = field(default_factory=list)  # the dataset's C class names, the same in every split


@dataclass
class _Raw:
    """A split as read, before its labels become class ids."""

    texts: list[str]
    column: pa.ChunkedArray
    names: list[str] | None  # a ClassLabel feature's names
    origin: str
    fingerprint: str | None  # None: a digest of the content (Hub data)


def load_splits(
    source: str | Source,
    splits: tuple[str, ...] = ("train", "test"),
    option: str = "data.path",
    optional: tuple[str, ...] = (),
) -> dict[str, Split]:
    """Load `splits`, and those of `optional` the data has. A plain path reads IMDB's columns with IMDB's
    hints, errors naming `option` as the fix. String labels are numbered by the first split's."""
    if isinstance(source, str):
        source = Source(source, option=option, imdb_hints=True)
    load = _load_hub if is_hub_id(source.path) else _load_local
    return _with_labels(load(source, splits, optional), source)


def data_files(path: str, splits: tuple[str, ...]) -> dict[str, list[Path]] | None:
    """The files `load_splits` reads for each split of a local directory (an empty list: no such split), or
    None when it reads something else: a Hub id, no such directory, or an aclImdb tree in it (which wins
    over files beside it)."""
    root = Path(path).expanduser()
    if not root.is_dir() or _find_acl_root(root) is not None:
        return None
    return {split: _split_files(root, split) for split in splits}


def files_fingerprint(files: list[Path]) -> str:
    """Local files' identity for caches: each one's resolved path, size and modification time."""
    return ";".join(f"{f.resolve()}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files)


def _split_files(root: Path, split: str) -> list[Path]:
    """`<split>-*.<ext>` shards, else `<split>.<ext>`; files of two formats for one split are an error."""
    by_format = {ext: sorted(root.glob(f"{split}-*.{ext}")) or sorted(root.glob(f"{split}.{ext}")) for ext in FORMATS}
    found = [files for files in by_format.values() if files]
    if len(found) > 1:
        names = ", ".join(f.name for files in found for f in files)
        raise SeqsentError(f"{root} holds the {split} split in several formats ({names}): keep one")
    return found[0] if found else []


def _load_local(source: Source, splits: tuple[str, ...], optional: tuple[str, ...]) -> dict[str, _Raw]:
    root = Path(source.path).expanduser()
    if root.exists() and not root.is_dir():
        raise SeqsentError(f"data path {root} is a file, not a directory: {source.hint()}")
    if not root.is_dir():
        raise SeqsentError(f"data directory {root} does not exist: {source.hint()}")
    acl = _find_acl_root(root)
    if acl is not None:
        present = [s for s in optional if (_acl_base(acl, s) / ("unsup" if s == UNLABELED else "pos")).is_dir()]
        return {split: _load_acl_split(acl, split) for split in (*splits, *present)}
    files = data_files(str(root), (*splits, *optional))
    assert files is not None  # a directory without an aclImdb tree
    for split in splits:
        if not files[split]:
            if not any(root.iterdir()):
                raise SeqsentError(f"data directory {root} is empty: {source.hint()}")
            raise SeqsentError(
                f"no {split}-*.parquet, {split}.parquet, .csv or .jsonl in {root} (and no aclImdb/{split}/ tree): "
                f"{source.split_fix(split)}"
            )
    return {split: _load_files(found, split, source) for split, found in files.items() if found}


def _load_files(files: list[Path], split: str, source: Source) -> _Raw:
    ext = files[0].name.rsplit(".", 1)[1]
    for file in files:
        if file.is_dir():
            raise SeqsentError(f"{file} is a directory, not a {ext} file: replace it with the {split} split's file")
    origin = str(files[0]) if len(files) == 1 else f"{files[0].parent}/{split}-*.{ext}"
    try:
        if ext == "parquet" and sum(pq.ParquetFile(f).metadata.num_rows for f in files) == 0:
            raise SeqsentError(f"{origin} holds no texts: the {split} split must not be empty")
        ds = datasets.load_dataset(FORMATS[ext], data_files={split: [str(f) for f in files]}, split=split)
    except SeqsentError:
        raise
    except Exception as err:  # pyarrow, pandas and datasets raise many types for a file they cannot read
        raise SeqsentError(
            f"cannot read {origin} as {ext} ({_reason(err)}): replace it with a valid {ext} file"
        ) from None
    return _read(ds, origin, split, source, files_fingerprint(files))


def _reason(err: BaseException) -> str:
    """The first line of the innermost cause (`datasets` wraps the reader's error in its own)."""
    while err.__cause__ is not None:
        err = err.__cause__
    return str(err).splitlines()[0] if str(err) else type(err).__name__


def _read(ds: datasets.Dataset, origin: str, split: str, source: Source, fingerprint: str | None) -> _Raw:
    """The texts and the raw label column of `ds`, its text checked."""
    settings = {source.text_column: "data.text_column", source.label_column: "data.label_column"}
    missing = [col for col in settings if col not in ds.column_names]
    if missing:
        raise SeqsentError(
            f"{origin} has no {' or '.join(repr(m) for m in missing)} column (found {ds.column_names}): "
            f"set {' and '.join(settings[m] for m in missing)} to the column of its "
            f"{' and '.join('texts' if m == source.text_column else 'labels' for m in missing)}"
        )
    if len(ds) == 0:
        raise SeqsentError(f"{origin} holds no texts: the {split} split must not be empty")
    columns = ds.with_format("arrow")  # whole columns at once: iterating rows formats each one
    name = source.text_column
    text = columns[name]
    if not _is_text(text.type):
        raise SeqsentError(
            f"column {name!r} of {origin} holds {text.type}, not text: the texts must be strings "
            "(data.text_column names their column)"
        )
    texts = [t if isinstance(t, str) else "" for t in text.to_pylist()]  # a missing text becomes ""
    if not any(texts):
        raise SeqsentError(f"column {name!r} of {origin} is empty or null in every row: it must hold the texts")
    feature = ds.features[source.label_column]
    names = [str(n) for n in feature.names] if isinstance(feature, datasets.ClassLabel) else None
    return _Raw(texts, columns[source.label_column], names, origin, fingerprint)


def _with_labels(raws: dict[str, _Raw], source: Source) -> dict[str, Split]:
    """Every split's labels as class ids, checked against one set of classes: the first labeled split's
    ClassLabel names or string labels, else whole numbers 0..C-1 (C: `source.num_classes`, else the largest + 1)."""
    labeled = [split for split in raws if split != UNLABELED]
    first = raws[labeled[0]] if labeled else None
    names = first.names if first else None
    if first and names is None and _is_text(first.column.type):
        names = sorted(set(_present(first, labeled[0], names=None, source=source)))
    for split in labeled[1:]:
        if raws[split].names is not None and names is not None and raws[split].names != names:
            raise SeqsentError(
                f"{raws[split].origin} has the classes {raws[split].names}, {first.origin} {names}: "
                "the splits must share one set of classes"
            )
    if names is not None and source.num_classes is not None and len(names) != source.num_classes:
        raise SeqsentError(
            f"data.num_classes={source.num_classes}, but {first.origin} has {len(names)} classes "
            f"({', '.join(names[:10])}): set data.num_classes={len(names)} or null (the data's count)"
        )
    labels = {split: _labels(raw, split, names, source) for split, raw in raws.items()}
    if names is None:
        largest = max((int(labels[s].max()) for s in labeled), default=1)
        names = [str(i) for i in range(source.num_classes or max(2, largest + 1))]
    out = {}
    for split, raw in raws.items():
        fingerprint = raw.fingerprint or _digest(raw, labels[split])
        out[split] = Split(raw.texts, labels[split], raw.origin, fingerprint, names)
    return out


def _is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _present(raw: _Raw, split: str, names: list[str] | None, source: Source) -> list:
    """The column's values; a one-line error when any is missing."""
    values = raw.column.to_pylist()
    if any(v is None or v != v for v in values):  # None, or NaN in a float column
        want = _want(names, source.num_classes, split)
        raise SeqsentError(f"{raw.origin} has missing labels: every {split} text needs a label, {want}")
    return values


def _labels(raw: _Raw, split: str, names: list[str] | None, source: Source) -> np.ndarray:
    """One split's label column as int64 class ids; a one-line error for anything that is not one."""
    want = _want(names, source.num_classes, split)
    origin, kind = raw.origin, raw.column.type
    if _is_text(kind) and split != UNLABELED:
        if names is None:
            raise SeqsentError(
                f"column {source.label_column!r} of {origin} holds text labels, the first split numbers: "
                "use one kind of label in every split"
            )
        index = {name: i for i, name in enumerate(names)}
        values = _present(raw, split, names, source)
        unseen = sorted(set(values) - set(index))
        if unseen:
            raise SeqsentError(
                f"{origin} has labels {unseen[:5]} in the {split} split that the training split does not have "
                f"({', '.join(names[:10])}): correct them, or give the training split examples of them"
            )
        return np.asarray([index[v] for v in values], dtype=np.int64)
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)):
        label = source.label_column
        raise SeqsentError(f"column {label!r} of {origin} holds {kind}, not labels: labels must be {want}")
    labels = np.asarray(_present(raw, split, names, source), dtype=np.float64)
    fractional = labels[labels != np.round(labels)]
    if len(fractional):
        raise SeqsentError(
            f"{origin} has fractional labels {sorted(set(fractional.tolist()))[:5]} in the {split} split: labels "
            f"must be {want} (teacher probabilities belong in a soft-label file, data.soft_labels)"
        )
    labels = labels.astype(np.int64)
    count = len(names) if names is not None else source.num_classes
    if split == UNLABELED:
        bad = labels[labels != -1]
    else:
        bad = labels[(labels < 0) | (labels >= count)] if count is not None else labels[labels < 0]
    if len(bad):
        unlabeled = " (-1 marks an unlabeled split: " + source.split_fix(split) + ")" if -1 in bad else ""
        raise SeqsentError(
            f"{origin} has labels {sorted(set(bad.tolist()))[:5]} in the {split} split: labels must be {want}"
            f"{unlabeled}"
        )
    return labels


def _want(names: list[str] | None, num_classes: int | None, split: str) -> str:
    """What the labels of `split` must be, for messages: "0 (neg) or 1 (pos)", "0, 1 or 2", ..."""
    if split == UNLABELED:
        return "-1 (unlabeled)"
    count = len(names) if names is not None else num_classes
    if count is None:
        return "whole numbers 0, 1, ... (one per class) or class names"
    if count > 6:
        return f"whole numbers 0..{count - 1}"
    shown = [f"{i} ({names[i]})" if names is not None else str(i) for i in range(count)]
    return f"{', '.join(shown[:-1])} or {shown[-1]}"


def _digest(raw: _Raw, labels: np.ndarray) -> str:
    digest = hashlib.sha256()
    for text in raw.texts:
        digest.update(text.encode("utf-8", errors="surrogatepass") + b"\0")
    return f"{raw.origin}:{digest.hexdigest()}:{hashlib.sha256(labels.tobytes()).hexdigest()}"


def _find_acl_root(root: Path) -> Path | None:
    for cand in (root, root / "aclImdb"):
        if (cand / "train" / "pos").is_dir() or (cand / "test" / "pos").is_dir():
            return cand
    return None


def _load_acl_split(acl: Path, split: str) -> _Raw:
    texts: list[str] = []
    labels: list[int] = []
    parts = [("neg", 0), ("pos", 1)] if split != UNLABELED else [("unsup", -1)]
    base = _acl_base(acl, split)
    digest = hashlib.sha256()
    for sub, label in parts:
        folder = base / sub
        if not folder.is_dir():
            raise SeqsentError(f"{folder} is missing: an aclImdb tree needs {split}/neg and {split}/pos folders")
        for file in sorted(folder.glob("*.txt"), key=_review_order):
            if not file.is_file():
                raise SeqsentError(f"{file} is not a review file: an aclImdb tree holds one review per .txt file")
            texts.append(file.read_bytes().decode("utf-8", errors="replace"))
            labels.append(label)
            stat = file.stat()
            digest.update(f"{file.name}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    if not texts:
        raise SeqsentError(f"{base} holds no .txt reviews: the {split} split must not be empty")
    column = pa.chunked_array([pa.array(labels, pa.int64())])
    return _Raw(texts, column, ACL_NAMES, origin=str(base), fingerprint=digest.hexdigest())


def _acl_base(acl: Path, split: str) -> Path:
    return acl / ("train" if split == UNLABELED else split)


def _review_order(file: Path) -> tuple[int, str]:
    head = file.stem.split("_", 1)[0]
    return (int(head), file.name) if head.isdigit() else (0, file.name)


def _load_hub(source: Source, splits: tuple[str, ...], optional: tuple[str, ...]) -> dict[str, _Raw]:
    hub_id, config = source.path, source.hub_config
    named = f"{hub_id!r}" + (f" (config {config!r})" if config else "")
    offline = os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1"
    if not offline and not _hub_reachable():
        raise SeqsentError(f"cannot reach the Hugging Face Hub to download {named}: {source.hint()}")
    try:
        found = datasets.load_dataset(hub_id, config)
    except Exception as err:
        raise SeqsentError(
            f"cannot load {named} ({_reason(err)}): check the Hub id and data.hub_config, or {source.hint()}"
        ) from None
    for split in splits:
        if split not in found:
            raise SeqsentError(f"{named} has no {split!r} split (it has {list(found)}): {source.split_fix(split)}")
    present = [s for s in (*splits, *optional) if s in found]
    return {s: _read(found[s], f"{hub_id}[{s}]", s, source, fingerprint=None) for s in present}


def _hub_reachable(host: str = "huggingface.co") -> bool:
    """Fail fast instead of waiting out `datasets`' retries when the Hub's name does not resolve."""
    try:
        socket.getaddrinfo(host, 443)  # a lookup: socket timeouts do not apply to it
    except OSError:
        return False
    return True
