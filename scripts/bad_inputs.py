"""Run every bad-input case through the real command line and write the catalogue of messages.

    python scripts/bad_inputs.py --out docs/bad_inputs.md

Each case runs `python -m seqsent.train|eval|predict ...` in a scratch directory (generated data, a
tiny trained checkpoint), and records the exit code, the last line of stderr, and whether a
traceback was printed. Prints progress to stderr, the table to stdout, and writes it to `--out`.
Takes about two minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from seqsent.data.synthetic import make_reviews, write_parquet_dir

TINY = ["data=synthetic", "data.n_train=200", "data.n_test=50", "model.hidden_size=8", "model.embed_dim=8"]


def make_fixtures(root: Path) -> dict[str, Path]:
    """Broken data dirs, broken checkpoints, and one good tiny run."""
    paths = {name: root / name for name in ("empty", "no_text", "no_label", "bad_labels", "files")}
    for p in paths.values():
        p.mkdir(parents=True)
    texts, labels = make_reviews(20, 0)
    for name, table in (
        ("no_text", pa.table({"review": texts, "label": labels})),
        ("no_label", pa.table({"text": texts})),
        ("bad_labels", pa.table({"text": texts, "label": [2] * len(texts)})),
    ):
        write_parquet_dir(paths[name], {"test": make_reviews(10, 1)})
        pq.write_table(table, paths[name] / "train-00000-of-00001.parquet")
    files = paths["files"]
    run(["seqsent.train", *TINY, "trainer.max_epochs=1", f"hydra.run.dir={root / 'good'}"], root)
    ckpt = root / "good" / "checkpoints" / "last.ckpt"
    (files / "truncated.ckpt").write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    (files / "notes.ckpt").write_text("just text\n")
    (files / "empty.txt").write_text("\n   \n")
    (files / "mb.txt").write_text("great " * 180_000 + "\n")
    return {**paths, "ckpt": ckpt, "good": root / "good"}


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def cases(f: dict[str, Path]) -> list[tuple[str, list[str]]]:
    d, ckpt = f["files"], f["ckpt"]
    train = ["seqsent.train", "hydra.run.dir=scratch_run"]
    return [
        ("data directory does not exist", [*train, "data.path=/no/such/dir"]),
        ("empty data directory", [*train, f"data.path={f['empty']}"]),
        ("Hub id without network", [*train, "data.path=stanfordnlp/imdb"]),
        ("parquet without `text`", [*train, f"data.path={f['no_text']}"]),
        ("parquet without `label`", [*train, f"data.path={f['no_label']}"]),
        ("labels outside {0, 1}", [*train, f"data.path={f['bad_labels']}"]),
        ("unknown `model=`", [*train, "model=transformer"]),
        ("`data.max_len=0`", [*train, *TINY, "data.max_len=0"]),
        ("`data.val_fraction=1.5`", [*train, *TINY, "data.val_fraction=1.5"]),
        ("`data.vocab_size=1`", [*train, *TINY, "data.vocab_size=1"]),
        ("negative learning rate", [*train, *TINY, "model.lr=-0.1"]),
        ("`model.lr=abc` (wrong type)", [*train, *TINY, "model.lr=abc"]),
        ("`data.batch_size=1.5` (wrong type)", [*train, *TINY, "data.batch_size=1.5"]),
        ("misspelled key `model.hiden_size=8`", [*train, *TINY, "model.hiden_size=8"]),
        ("misspelled top-level key `sed=3`", [*train, *TINY, "sed=3"]),
        ("misspelled added key `+model.hiden_size=8`", [*train, *TINY, "+model.hiden_size=8"]),
        ("adding a key the config has `+model.lr=0.1`", [*train, *TINY, "+model.lr=0.1"]),
        ("misspelled Hydra key `hydra.run.dri=x`", [*train, *TINY, "hydra.run.dri=x"]),
        ("`trainer.devices=0`", [*train, *TINY, "trainer.devices=0"]),
        ("`trainer.accelerator=gpu` without a GPU", [*train, *TINY, "trainer.accelerator=gpu"]),
        ("output dir holds another run", ["seqsent.train", *TINY, f"hydra.run.dir={f['good']}"]),
        ("eval into a training run's directory", ["seqsent.eval", f"ckpt_path={ckpt}", f"hydra.run.dir={f['good']}"]),
        ("eval without `ckpt_path=`", ["seqsent.eval"]),
        ("eval with a bare checkpoint path", ["seqsent.eval", f"ckpt_path={ckpt}", str(ckpt)]),
        ("checkpoint does not exist", ["seqsent.eval", f"ckpt_path={d / 'missing.ckpt'}"]),
        ("truncated checkpoint", ["seqsent.eval", f"ckpt_path={d / 'truncated.ckpt'}"]),
        ("file that is not a checkpoint", ["seqsent.eval", f"ckpt_path={d / 'notes.ckpt'}"]),
        (
            "resume with other model settings",
            ["seqsent.train", *TINY, "model.hidden_size=16", f"ckpt_path={ckpt}"],
        ),
        (
            "resume a finished run",
            ["seqsent.train", *TINY, "trainer.max_epochs=1", f"hydra.run.dir={f['good']}", f"ckpt_path={ckpt}"],
        ),
        ("predict: empty string", ["seqsent.predict", f"ckpt_path={ckpt}", "text="]),
        ("predict: empty file", ["seqsent.predict", f"ckpt_path={ckpt}", f"file={d / 'empty.txt'}"]),
        ("predict: 1 MB review (works)", ["seqsent.predict", f"ckpt_path={ckpt}", f"file={d / 'mb.txt'}"]),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="markdown file to write")
    args = parser.parse_args()
    rows = [
        "| input | exit | message (last line of stderr, or stdout when it succeeds) | traceback |",
        "|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["SEQSENT_CACHE_DIR"] = str(root / "cache")
        print("making fixtures (a tiny training run) ...", file=sys.stderr, flush=True)
        fixtures = make_fixtures(root)
        all_cases = cases(fixtures)
        for i, (name, argv) in enumerate(all_cases, 1):
            argv = [a.replace("hydra.run.dir=scratch_run", f"hydra.run.dir=scratch_run_{i}") for a in argv]
            proc = run(argv, root)
            stream = proc.stderr if proc.returncode else proc.stdout
            last = (stream.strip().splitlines() or [""])[-1].replace(tmp, "<tmp>").replace("|", "\\|")
            rows.append(
                f"| {name} | {proc.returncode} | `{last[:300]}` | {'yes' if 'Traceback' in proc.stderr else 'no'} |"
            )
            print(f"[{i}/{len(all_cases)}] {name}: exit {proc.returncode}", file=sys.stderr, flush=True)
    table = "\n".join(rows)
    print(table)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        header = f"# Bad inputs and their messages\n\nMade by `python scripts/bad_inputs.py --out {args.out}`.\n\n"
        note = (
            "\n\nReviews that are empty or whitespace only (encoded as one `<unk>`), hold non-UTF-8 bytes "
            "(aclImdb files are decoded with replacement characters) or are 1 MB long (truncated to "
            "`max_len`) are accepted, not errors: `tests/test_bad_inputs.py` checks them.\n"
        )
        args.out.write_text(header + table + note)
        print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
