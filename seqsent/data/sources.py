"""Find and load IMDB splits with `datasets`: a Hub id, a parquet directory, or an `aclImdb/` tree.

Every problem with the data is a one-line `SeqsentError` naming the file and the fix.
"""

from __future__ import annotations

import hashlib
import os
import socket
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from seqsent.errors import SeqsentError

DEFAULT_HUB_ID = "stanfordnlp/imdb"
ENV_DIR = "SEQSENT_IMDB_DIR"


def fix_hint(option: str = "data.path") -> str:
    """The fix a data error names: the environment variable, or `option` (`--data` in the scripts)."""
    return f"set {ENV_DIR}=/path/to/imdb or {option}=/path/to/imdb (parquet files or aclImdb/)"


@dataclass
class Split:
    """Texts and labels of one split, plus where they came from (for messages and cache keys)."""

    texts: list[str]
    labels: np.ndarray  # int64; -1 marks unlabeled reviews
    origin: str
    fingerprint: str


def default_path() -> str:
    """`$SEQSENT_IMDB_DIR` when set, else the Hub id."""
    return os.environ.get(ENV_DIR) or DEFAULT_HUB_ID


def load_splits(path: str, splits: tuple[str, ...] = ("train", "test"), option: str = "data.path") -> dict[str, Split]:
    """Load the named splits from `path` (local directory or Hub id); errors name `option` as the fix."""
    local, parts = Path(path).expanduser(), path.split("/")
    hub_id = len(parts) == 2 and all(parts) and not path.startswith((".", "~"))  # owner/name, not a directory
    if local.exists() or not hub_id:
        return _load_local(local, splits, option)
    return _load_hub(path, splits, option)


def parquet_files(root: Path, splits: tuple[str, ...]) -> dict[str, list[Path]] | None:
    """The parquet files `load_splits` reads for each split of a local directory (`<split>-*.parquet`,
    else `<split>.parquet`), or None when it reads something else: no such directory, or an aclImdb
    tree in it (which wins over parquet files beside it)."""
    if not root.is_dir() or _find_acl_root(root) is not None:
        return None
    return {s: sorted(root.glob(f"{s}-*.parquet")) or sorted(root.glob(f"{s}.parquet")) for s in splits}


def file_fingerprint(file: Path) -> str:
    """A local file's identity for caches: its resolved path, size and modification time."""
    stat = file.stat()
    return f"{file.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"


def _load_local(root: Path, splits: tuple[str, ...], option: str) -> dict[str, Split]:
    if root.exists() and not root.is_dir():
        raise SeqsentError(f"data path {root} is a file, not a directory: {fix_hint(option)}")
    if not root.is_dir():
        raise SeqsentError(f"data directory {root} does not exist: {fix_hint(option)}")
    acl = _find_acl_root(root)
    if acl is not None:
        return {split: _load_acl_split(acl, split) for split in splits}
    found = parquet_files(root, splits)
    assert found is not None  # a directory without an aclImdb tree
    files: dict[str, Path] = {}
    for split, matches in found.items():
        if not matches:
            if not any(root.iterdir()):
                raise SeqsentError(f"data directory {root} is empty: {fix_hint(option)}")
            raise SeqsentError(
                f"no {split}-*.parquet in {root} (and no aclImdb/{split}/ tree): "
                f"put the IMDB {split} split there or point {option} elsewhere"
            )
        if len(matches) > 1:
            raise SeqsentError(f"several {split} files in {root} ({', '.join(m.name for m in matches)}): keep one")
        files[split] = matches[0]
    return {split: _load_parquet(file, split) for split, file in files.items()}


def _load_parquet(file: Path, split: str) -> Split:
    if file.is_dir():
        raise SeqsentError(f"{file} is a directory, not a parquet file: replace it with the {split} split's file")
    try:
        rows = pq.ParquetFile(file).metadata.num_rows
        if rows == 0:
            raise SeqsentError(f"{file} holds no reviews: the {split} split must not be empty")
        ds = datasets.load_dataset("parquet", data_files={split: str(file)}, split=split)
    except SeqsentError:
        raise
    except Exception as err:  # pyarrow raises many types for a corrupt file
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise SeqsentError(f"cannot read {file} as parquet ({msg}): replace it with a valid parquet file") from None
    return _to_split(ds, str(file), split, file_fingerprint(file))


def _to_split(ds: datasets.Dataset, origin: str, split: str, fingerprint: str | None) -> Split:
    """The reviews and labels of `ds`, checked; `fingerprint` None: a digest of the content (Hub data)."""
    missing = [col for col in ("text", "label") if col not in ds.column_names]
    if missing:
        raise SeqsentError(
            f"{origin} has no {' or '.join(repr(m) for m in missing)} column (found {ds.column_names}): "
            "IMDB files need a 'text' and a 'label' column"
        )
    if len(ds) == 0:
        raise SeqsentError(f"{origin} holds no reviews: the {split} split must not be empty")
    columns = ds.with_format("arrow")  # whole columns at once: iterating rows formats each one
    text = columns["text"]
    if not (pa.types.is_string(text.type) or pa.types.is_large_string(text.type)):
        raise SeqsentError(
            f"column 'text' of {origin} holds {text.type}, not text: IMDB files need the reviews as strings"
        )
    texts = [t if isinstance(t, str) else "" for t in text.to_pylist()]  # a missing review becomes ""
    if not any(texts):
        raise SeqsentError(f"column 'text' of {origin} is empty or null in every row: it must hold the reviews")
    labels = _labels(columns["label"], origin, split)
    if fingerprint is None:
        digest = hashlib.sha256()
        for text in texts:
            digest.update(text.encode("utf-8", errors="surrogatepass") + b"\0")
        fingerprint = f"{origin}:{digest.hexdigest()}:{hashlib.sha256(labels.tobytes()).hexdigest()}"
    return Split(texts=texts, labels=labels, origin=origin, fingerprint=fingerprint)


def _labels(column: pa.ChunkedArray, origin: str, split: str) -> np.ndarray:
    """A `label` column as int64: 0/1 (-1 in the unsupervised split); a one-line error for anything else."""
    want = "-1 (unlabeled)" if split == "unsupervised" else "0 (neg) or 1 (pos)"
    kind = column.type
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)):
        raise SeqsentError(f"column 'label' of {origin} holds {kind}, not numbers: labels must be {want}")
    labels = np.asarray(column.to_pylist(), dtype=np.float64)
    if np.isnan(labels).any():
        raise SeqsentError(f"{origin} has missing labels: every {split} review needs label {want}")
    fractional = labels[labels != np.round(labels)]
    if len(fractional):
        raise SeqsentError(
            f"{origin} has fractional labels {sorted(set(fractional.tolist()))[:5]} in the {split} split: labels "
            f"must be {want} (teacher probabilities belong in a soft-label file, data.soft_labels)"
        )
    labels = labels.astype(np.int64)
    allowed = {-1} if split == "unsupervised" else {0, 1}
    bad = sorted(set(np.unique(labels).tolist()) - allowed)
    if bad:
        raise SeqsentError(f"{origin} has labels {bad[:5]} in the {split} split: labels must be {want}")
    return labels


def _find_acl_root(root: Path) -> Path | None:
    for cand in (root, root / "aclImdb"):
        if (cand / "train" / "pos").is_dir() or (cand / "test" / "pos").is_dir():
            return cand
    return None


def _load_acl_split(acl: Path, split: str) -> Split:
    texts: list[str] = []
    labels: list[int] = []
    parts = [("neg", 0), ("pos", 1)] if split != "unsupervised" else [("unsup", -1)]
    base = acl / ("train" if split == "unsupervised" else split)
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
    return Split(texts, np.asarray(labels, dtype=np.int64), origin=str(base), fingerprint=digest.hexdigest())


def _review_order(file: Path) -> tuple[int, str]:
    head = file.stem.split("_", 1)[0]
    return (int(head), file.name) if head.isdigit() else (0, file.name)


def _load_hub(hub_id: str, splits: tuple[str, ...], option: str) -> dict[str, Split]:
    offline = os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1"
    if not offline and not _hub_reachable():
        raise SeqsentError(f"cannot reach the Hugging Face Hub to download {hub_id!r}: {fix_hint(option)}")
    out: dict[str, Split] = {}
    for split in splits:
        try:
            ds = datasets.load_dataset(hub_id, split=split)
        except Exception as err:
            msg = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise SeqsentError(f"cannot load split {split!r} of {hub_id!r} ({msg}): {fix_hint(option)}") from None
        out[split] = _to_split(ds, f"{hub_id}[{split}]", split, fingerprint=None)
    return out


def _hub_reachable(host: str = "huggingface.co") -> bool:
    """Fail fast instead of waiting out `datasets`' retries when the Hub's name does not resolve."""
    try:
        socket.getaddrinfo(host, 443)  # a lookup: socket timeouts do not apply to it
    except OSError:
        return False
    return True
