"""Soft labels: a teacher's probabilities for unlabeled reviews, as a parquet file (`text`, `prob`).

    python scripts/soft_label.py --out soft/unsup.parquet CKPT [CKPT ...]   # data: $SEQSENT_IMDB_DIR or --data
    python -m seqsent.train data.soft_labels=soft/unsup.parquet

With `data.soft_labels` the training part holds the gold training reviews plus these reviews, each
with its teacher probability as the target of the BCE loss (distillation on unlabeled text).
Validation and test are untouched, the vocabulary is still built on the gold training reviews only,
and soft-labeled reviews that are also validation or test reviews are dropped.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from seqsent.errors import SeqsentError

MAKE_HINT = "make one with scripts/soft_label.py or leave data.soft_labels unset"
REQUIRED = "required"  # experiment=student's placeholder: the run needs a file named on the command line
META_KEY = b"seqsent_soft_labels"


def write_parquet(table: pa.Table, path: Path, **options: Any) -> None:
    """`pq.write_table` through a temporary file and a rename: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(3)}.tmp")
    try:
        pq.write_table(table, tmp, **options)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_soft_labels(path: Path, texts: list[str], probs: np.ndarray, info: dict) -> None:
    """Write `text`/`prob` columns (and `info` as JSON metadata) to a new file, atomically."""
    if len(texts) != len(probs):
        raise ValueError(f"{len(texts)} texts but {len(probs)} probabilities")
    table = pa.table({"text": pa.array(texts, pa.string()), "prob": pa.array(np.asarray(probs), pa.float32())})
    write_parquet(table.replace_schema_metadata({META_KEY: json.dumps(info).encode()}), path, compression="zstd")


def check_soft_labels_path(path: str | Path) -> Path:
    """The soft-label file `path` names; a one-line error when none is named or it does not exist."""
    if str(path) == REQUIRED:
        raise SeqsentError(
            "this recipe trains on soft labels: pass data.soft_labels=<the file scripts/soft_label.py wrote>"
        )
    file = Path(path).expanduser()
    if not file.is_file():
        problem = "is a directory: name the .parquet file;" if file.is_dir() else "does not exist:"
        raise SeqsentError(f"soft-label file {file} {problem} {MAKE_HINT}")
    return file


def read_soft_labels(path: str | Path) -> tuple[list[str], np.ndarray]:
    """The texts and probabilities of a soft-label file; a one-line `SeqsentError` for any problem."""
    file = check_soft_labels_path(path)
    try:
        table = pq.read_table(file)
    except Exception as err:  # pyarrow raises many types for a corrupt file
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise SeqsentError(f"cannot read {file} as parquet ({msg}): {MAKE_HINT}") from None
    missing = [col for col in ("text", "prob") if col not in table.column_names]
    if missing:
        raise SeqsentError(
            f"{file} has no {' or '.join(repr(m) for m in missing)} column (found {table.column_names}): {MAKE_HINT}"
        )
    if table.num_rows == 0:
        raise SeqsentError(f"{file} holds no reviews: {MAKE_HINT}")
    text_type, prob_type = table.schema.field("text").type, table.schema.field("prob").type
    if not (pa.types.is_string(text_type) or pa.types.is_large_string(text_type)):
        raise SeqsentError(f"{file}: its 'text' column holds {text_type}, not text: {MAKE_HINT}")
    if not (pa.types.is_floating(prob_type) or pa.types.is_integer(prob_type)):
        raise SeqsentError(f"{file}: its 'prob' column holds {prob_type}, not numbers: {MAKE_HINT}")
    probs = table.column("prob").to_numpy(zero_copy_only=False).astype(np.float32)
    bad = ~np.isfinite(probs) | (probs < 0) | (probs > 1)
    if bad.any():
        raise SeqsentError(
            f"{file} has {int(bad.sum())} probabilities outside [0, 1] (first at row {int(np.argmax(bad))}): "
            f"soft labels are probabilities; {MAKE_HINT}"
        )
    texts = [t if isinstance(t, str) else "" for t in table.column("text").to_pylist()]
    return texts, probs


def soft_label_info(path: str | Path) -> dict:
    """The metadata `write_soft_labels` stored (teachers, source split), or {}."""
    meta = pq.read_schema(Path(path).expanduser()).metadata or {}
    return json.loads(meta[META_KEY]) if META_KEY in meta else {}


def _keys(ids: np.ndarray, offsets: np.ndarray, rows: Iterable[int]) -> Iterator[bytes]:
    """Each row's key: its token ids' bytes (equal keys, equal encoded reviews)."""
    return (ids[offsets[i] : offsets[i + 1]].tobytes() for i in rows)


def review_keys(ids: np.ndarray, offsets: np.ndarray, index: np.ndarray | None = None) -> set[bytes]:
    """The keys of the reviews `index` (default: all), to find the same review in two sets."""
    return set(_keys(ids, offsets, range(len(offsets) - 1) if index is None else index))


def drop_known(
    ids: np.ndarray, offsets: np.ndarray, probs: np.ndarray, known: set[bytes]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Remove the reviews whose encoding is in `known`: (ids, offsets, probs, number dropped)."""
    keep = np.array([key not in known for key in _keys(ids, offsets, range(len(probs)))], dtype=bool)
    new_offsets = np.concatenate([[0], np.cumsum(np.diff(offsets)[keep])]).astype(offsets.dtype)
    return ids[np.repeat(keep, np.diff(offsets))], new_offsets, probs[keep], int((~keep).sum())
