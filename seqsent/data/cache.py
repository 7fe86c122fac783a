"""On-disk cache of the vocabulary and the encoded splits, keyed by the data and the settings.

A cache entry is a directory `prep-<key>/` holding `tokenizer.json`, `meta.json` (the key's settings,
the class names and the split sizes) and, per split, `<split>.ids.npy`, `<split>.offsets.npy`,
`<split>.labels.npy`. It is built in a temporary directory and renamed into place, so concurrent
builders never leave a half-written entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from seqsent.data.sources import Source, Split, data_files, files_fingerprint, load_splits
from seqsent.data.vocab import TOKENIZER_VERSION, encode
from seqsent.errors import SeqsentError

CACHE_FIX = "set data.cache_dir (or $SEQSENT_CACHE_DIR) to a writable directory"
ARRAYS = ("ids", "offsets", "labels")  # an `EncodedSplit`'s fields, one `<split>.<name>.npy` file each


def default_cache_dir() -> Path:
    """`$SEQSENT_CACHE_DIR`, else `~/.cache/seqsent`."""
    env = os.environ.get("SEQSENT_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "seqsent"


@contextmanager
def cache_writes(target: Path) -> Iterator[None]:
    """Turn an `OSError` while writing `target` (unwritable, full, a file in the way) into a one-line error."""
    try:
        yield
    except OSError as err:
        raise SeqsentError(f"cannot write {target} ({err.strerror or err}): {CACHE_FIX}") from None


def ensure_cache_dir(directory: Path) -> None:
    """Create `directory` if needed and check that files can be made in it; a one-line error if not."""
    if directory.exists() and not directory.is_dir():
        raise SeqsentError(f"cache directory {directory} is a file, not a directory: {CACHE_FIX}")
    with cache_writes(directory):
        directory.mkdir(parents=True, exist_ok=True)
        os.rmdir(tempfile.mkdtemp(dir=directory, prefix=".probe-"))


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded train/validation split of `n` reviews: (train indices, validation indices), sorted."""
    perm = np.random.default_rng(seed).permutation(n)
    n_val = int(round(n * val_fraction))
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


@dataclass
class EncodedSplit:
    """A split as a flat id array with offsets, and its labels."""

    ids: np.ndarray
    offsets: np.ndarray
    labels: np.ndarray

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class Prepared:
    """What `prepare` returns: the tokenizer JSON, the encoded splits, the class names and the cache entry."""

    tokenizer_json: str
    splits: dict[str, EncodedSplit]
    label_names: list[str]
    directory: Path
    built: bool


def cache_key(fingerprints: dict[str, str], settings: dict[str, Any]) -> str:
    """The entry name's hash: the data's fingerprints and the settings that change the encoded data."""
    key = {"version": TOKENIZER_VERSION, "data": fingerprints, "settings": settings}
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:20]


def prepare(
    source: Source,
    splits: tuple[str, ...],
    settings: dict[str, Any],
    cache_dir: Path,
    make_tokenizer: Callable[[dict[str, Split]], Tokenizer],
    optional: tuple[str, ...] = (),
) -> Prepared:
    """Load the cached entry of `splits` (and those of `optional` the data has) for these `settings`,
    building it first when absent, with the vocabulary `make_tokenizer` makes from the loaded splits."""
    raw = None
    # the local files `load_splits` would read are fingerprinted without reading them; anything else
    # (an aclImdb tree, a Hub id, a missing split) is loaded first
    files = data_files(source.path, (*splits, *optional))
    if files is not None and all(files[split] for split in splits):
        fingerprints = {split: files_fingerprint(found) for split, found in files.items() if found}
    else:
        raw = load_splits(source, splits, optional=optional)
        fingerprints = {split: raw[split].fingerprint for split in raw}
    entry = cache_dir / f"prep-{cache_key(fingerprints, settings)}"
    if (entry / "meta.json").is_file():
        try:
            tokenizer_json, encoded, meta = _read_entry(entry, tuple(fingerprints))
            return Prepared(tokenizer_json, encoded, meta["label_names"], directory=entry, built=False)
        except (OSError, ValueError, KeyError) as err:  # a damaged entry (disk full, an edit): build it again
            print(f"note: cache entry {entry} is damaged ({type(err).__name__}: {err}); rebuilding it", flush=True)
            _discard(entry)
    ensure_cache_dir(cache_dir)  # before the work, not after it
    raw = raw or load_splits(source, splits, optional=optional)
    tok = make_tokenizer(raw)
    encoded = {split: EncodedSplit(*encode(tok, part.texts), part.labels) for split, part in raw.items()}
    names = raw[splits[0]].label_names
    _write_entry(entry, tok.to_str(), encoded, {"settings": settings, "label_names": names, "num_classes": len(names)})
    return Prepared(tok.to_str(), encoded, names, directory=entry, built=True)


def _write_entry(entry: Path, tokenizer_json: str, encoded: dict[str, EncodedSplit], info: dict) -> None:
    """Write the entry into a temporary directory, then rename it to `entry` (readers see all of it or nothing);
    its `meta.json` holds `info` and the split sizes."""
    tmp = entry.parent / f".{entry.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        with cache_writes(entry):
            tmp.mkdir(parents=True)
            (tmp / "tokenizer.json").write_text(tokenizer_json, encoding="utf-8")
            for split, enc in encoded.items():
                for name in ARRAYS:
                    np.save(tmp / f"{split}.{name}.npy", getattr(enc, name))
            meta = {**info, "splits": {s: len(e) for s, e in encoded.items()}}
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
            try:
                os.rename(tmp, entry)
            except OSError:  # another process finished first; its entry is identical
                if not (entry / "meta.json").is_file():
                    raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _read_entry(entry: Path, splits: tuple[str, ...]) -> tuple[str, dict[str, EncodedSplit], dict]:
    """The entry's vocabulary, splits and meta, checked against its `meta.json` (ValueError if they disagree)."""
    tokenizer_json = (entry / "tokenizer.json").read_text(encoding="utf-8")
    meta = json.loads((entry / "meta.json").read_text(encoding="utf-8"))
    sizes = meta["splits"]
    out = {}
    for split in splits:
        enc = EncodedSplit(*(np.load(entry / f"{split}.{name}.npy", allow_pickle=False) for name in ARRAYS))
        if not (len(enc) == sizes[split] == len(enc.offsets) - 1 and enc.offsets[-1] == len(enc.ids)):
            raise ValueError(f"{split} holds {len(enc)} reviews and {len(enc.ids)} ids, meta.json {sizes[split]}")
        out[split] = enc
    return tokenizer_json, out, meta


def _discard(entry: Path) -> None:
    """Move a damaged entry out of the way (renamed first, so no reader sees it half deleted)."""
    aside = entry.parent / f".{entry.name}.damaged-{os.getpid()}-{secrets.token_hex(4)}"
    with suppress(OSError):  # another process moved or rebuilt it already: nothing to delete
        os.rename(entry, aside)
    shutil.rmtree(aside, ignore_errors=True)
