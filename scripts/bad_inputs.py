"""Run every bad-input case through the real command line and write the catalogue of messages.

    python scripts/bad_inputs.py                     # rewrites the catalogue in docs/reliability.md
    python scripts/bad_inputs.py --out other.md      # into another page (made if it does not exist)

Each case runs `python -m seqsent.train|eval|predict ...` in a scratch directory (generated data, a
tiny trained checkpoint) and records the exit code, the message the user reads, whether a traceback
was printed, and whether a file that existed before the command changed. The table replaces the
lines between `<!-- catalogue:start -->` and `<!-- catalogue:end -->` of the page; the rest of the
page is left as it is. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import torch

from seqsent.data.synthetic import make_reviews, write_parquet_dir
from seqsent.errors import SeqsentError, report_errors
from seqsent.models.classifier import FORMAT_KEY, PREPROCESSING_KEY

PAGE = Path(__file__).resolve().parent.parent / "docs" / "reliability.md"
START, END = "<!-- catalogue:start -->", "<!-- catalogue:end -->"
HEADER = [
    "| input | exit | message | traceback | existing files changed |",
    "|---|---|---|---|---|",
]
SMALL_MODEL = ["model.encoder.hidden_size=8", "model.embed_dim=8", "model.bigram_buckets=512"]
TINY = ["data=synthetic", "data.n_train=200", "data.n_test=50", *SMALL_MODEL]
TINY_LM = ["data=synthetic", "data.n_train=200", "data.n_test=50", "lm.embed_dim=16", "lm.hidden_size=8"]
TINY_LM += ["lm_data.batch_size=4", "lm_data.bptt=12"]
TOY_MODULE = 'class Broken:\n    def __init__(self, **kwargs):\n        raise ValueError("a bug in my module")\n'


def make_fixtures(root: Path) -> dict[str, Path]:
    """Broken data dirs, broken checkpoints, a module of one's own, and one good tiny run."""
    texts, labels = make_reviews(20, 0)
    tables = {
        "no_text": pa.table({"review": texts, "label": labels}),
        "no_label": pa.table({"text": texts}),
        "bad_labels": pa.table({"text": texts, "label": [2] * len(texts)}),
        "fractional_labels": pa.table({"text": texts, "label": [0.9, 0.4] * (len(texts) // 2)}),
        "string_labels": pa.table({"text": texts, "label": ["pos", "neg"] * (len(texts) // 2)}),
        "integer_text": pa.table({"text": list(range(len(texts))), "label": labels}),
        "one_class": pa.table({"text": texts, "label": [1] * len(texts)}),
        "three_classes": pa.table({"text": texts, "label": [0, 1, 2, 1] * (len(texts) // 4)}),
    }
    paths = {name: root / name for name in ("empty", "split_is_dir", "files", *tables)}
    for p in paths.values():
        p.mkdir(parents=True)
    for name, table in tables.items():
        write_parquet_dir(paths[name], {"test": make_reviews(10, 1)})
        pq.write_table(table, paths[name] / "train-00000-of-00001.parquet")
    write_parquet_dir(paths["split_is_dir"], {"test": make_reviews(10, 1)})
    (paths["split_is_dir"] / "train-00000-of-00001.parquet").mkdir()
    files = paths["files"]
    good = run(["seqsent.train", *TINY, "trainer.max_epochs=1", f"hydra.run.dir={root / 'good'}"], root)
    if good.returncode:
        raise SystemExit(f"the tiny training run failed:\n{good.stderr[-3000:]}")
    ckpt = root / "good" / "checkpoints" / "last.ckpt"
    stopped = [*TINY, "callbacks=[default,early_stopping]", "callbacks.early_stopping.patience=0"]
    stopped += ["callbacks.early_stopping.min_delta=1.0", "trainer.max_epochs=4"]  # no gain is ever enough
    if run(["seqsent.train", *stopped, f"hydra.run.dir={root / 'stopped'}"], root).returncode:
        raise SystemExit("the tiny early-stopped run failed")
    if run(["seqsent.pretrain", *TINY_LM, "trainer.max_epochs=1", f"hydra.run.dir={root / 'lm'}"], root).returncode:
        raise SystemExit("the tiny language model run failed")
    no_wandb = root / "no_wandb" / "wandb-0.0.1.dist-info"  # found first on PYTHONPATH: as if wandb were too old
    no_wandb.mkdir(parents=True)
    (no_wandb / "METADATA").write_text("Metadata-Version: 2.1\nName: wandb\nVersion: 0.0.1\n")
    (files / "truncated.ckpt").write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    (files / "notes.ckpt").write_text("just text\n")
    (files / "empty.txt").write_text("\n   \n")
    (files / "mb.txt").write_text("great " * 180_000 + "\n")
    (files / "figure.png").write_bytes(b"an earlier figure")
    (files / "reviews").mkdir()
    torch.save({"state_dict": {}, "hyper_parameters": {}, "x": argparse.Namespace()}, files / "pickle.ckpt")
    garbled = torch.load(ckpt, map_location="cpu", weights_only=True)
    garbled[PREPROCESSING_KEY]["max_len"] = "200"
    torch.save(garbled, files / "garbled.ckpt")
    del garbled[FORMAT_KEY]
    torch.save(garbled, files / "old.ckpt")  # as seqsent 0.1 wrote them
    (root / "toymod.py").write_text(TOY_MODULE)  # importable: python -m puts the working dir first
    return {
        **paths,
        "ckpt": ckpt,
        "good": root / "good",
        "stopped": root / "stopped",
        "no_wandb": no_wandb.parent,
        "lm": root / "lm" / "checkpoints" / "last.ckpt",
    }


def run(args: list[str], cwd: Path, extra_env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"} | dict(extra_env or {})
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def cases(f: Mapping[str, Path]) -> list[tuple[str, list[str]] | tuple[str, list[str], dict[str, str]]]:
    """(what the case is, the command after `python -m`[, environment variables it runs with])."""
    d, ckpt = f["files"], f["ckpt"]
    train = ["seqsent.train", "hydra.run.dir=scratch_run"]
    return [
        ("data directory does not exist", [*train, "data.path=/no/such/dir"]),
        ("empty data directory", [*train, f"data.path={f['empty']}"]),
        ("Hub id without network", [*train, "data.path=stanfordnlp/imdb"]),
        ("parquet without `text`", [*train, f"data.path={f['no_text']}"]),
        ("parquet without `label`", [*train, f"data.path={f['no_label']}"]),
        ("labels 2 only (works: class ids, with a warning)", [*train, f"data.path={f['bad_labels']}"]),
        ("fractional labels (0.9, 0.4)", [*train, f"data.path={f['fractional_labels']}"]),
        ("string labels pos, neg (works: sorted class names)", [*train, f"data.path={f['string_labels']}"]),
        ("`text` column of integers", [*train, f"data.path={f['integer_text']}"]),
        (
            "training split of one class (works, with a warning)",
            [*train, *SMALL_MODEL, "trainer.max_epochs=1", f"data.path={f['one_class']}"],
        ),
        ("`data.path` is a file", [*train, f"data.path={d / 'notes.ckpt'}"]),
        ("a directory where the train parquet file should be", [*train, f"data.path={f['split_is_dir']}"]),
        ("`data.cache_dir` is a file", [*train, *TINY, f"data.cache_dir={d / 'notes.ckpt'}"]),
        ("unknown option `model=transformerxl`", [*train, "model=transformerxl"]),
        ("misspelled key `model.hiden_size=8`", [*train, *TINY, "model.hiden_size=8"]),
        ("misspelled top-level key `sed=3`", [*train, *TINY, "sed=3"]),
        ("misspelled added key `+model.hiden_size=8`", [*train, *TINY, "+model.hiden_size=8"]),
        ("adding a key the config has `+model.lr=0.1`", [*train, *TINY, "+model.lr=0.1"]),
        ("misspelled Hydra key `hydra.run.dri=x`", [*train, *TINY, "hydra.run.dri=x"]),
        ("unreadable override `model.lr=[1,`", [*train, *TINY, "model.lr=[1,"]),
        ("`model.lr=abc` (wrong type)", [*train, *TINY, "model.lr=abc"]),
        ("`data.batch_size=1.5` (wrong type)", [*train, *TINY, "data.batch_size=1.5"]),
        ("`seed=foo` (wrong type)", [*train, *TINY, "seed=foo"]),
        ("`data.max_len=0`", [*train, *TINY, "data.max_len=0"]),
        ("`data.val_fraction=1.5`", [*train, *TINY, "data.val_fraction=1.5"]),
        ("`data.vocab_size=1`", [*train, *TINY, "data.vocab_size=1"]),
        ("negative learning rate", [*train, *TINY, "model.lr=-0.1"]),
        ("unknown encoder `model/encoder=xyz`", [*train, "model/encoder=xyz"]),
        ("unknown encoder `model.encoder.name=xyz`", [*train, *TINY, "model.encoder.name=xyz"]),
        ("a setting the encoder lacks `+model.encoder.widths=[3]`", [*train, *TINY, "+model.encoder.widths=[3]"]),
        ("an encoder class that cannot be imported", [*train, *TINY, "+model.encoder._target_=nomod.Encoder"]),
        ("`model.num_classes=3` for two-class data", [*train, *TINY, "model.num_classes=3"]),
        ("`trainer.devices=0`", [*train, *TINY, "trainer.devices=0"]),
        ("`trainer.max_epochs=0`", [*train, *TINY, "trainer.max_epochs=0"]),
        ("`trainer.limit_train_batches=0`", [*train, *TINY, "trainer.limit_train_batches=0"]),
        ("`hydra.run.dir` under a file", ["seqsent.train", *TINY, f"hydra.run.dir={d / 'notes.ckpt'}/run"]),
        ("`trainer.accelerator=gpu` without a GPU", [*train, *TINY, "trainer.accelerator=gpu"]),
        ("a `ValueError` in your own module (keeps its traceback)", [*train, *TINY, "model._target_=toymod.Broken"]),
        ("output dir holds another run", ["seqsent.train", *TINY, f"hydra.run.dir={f['good']}"]),
        ("resume from a checkpoint that does not exist", [*train, *TINY, f"ckpt_path={d / 'missing.ckpt'}"]),
        ("resume from a truncated checkpoint", [*train, *TINY, f"ckpt_path={d / 'truncated.ckpt'}"]),
        ("resume with other model settings", [*train, *TINY, "model.encoder.hidden_size=16", f"ckpt_path={ckpt}"]),
        ("resume with other data settings", [*train, *TINY, "data.split_seed=7", f"ckpt_path={ckpt}"]),
        (
            "resume a finished run",
            ["seqsent.train", *TINY, "trainer.max_epochs=1", f"hydra.run.dir={f['good']}", f"ckpt_path={ckpt}"],
        ),
        (
            "resume a run early stopping ended",
            [
                *train,
                *TINY,
                "callbacks=[default,early_stopping]",
                f"ckpt_path={f['stopped'] / 'checkpoints/last.ckpt'}",
            ],
        ),
        (
            "`logger=wandb` without (a recent enough) wandb",
            [*train, *TINY, "logger=wandb"],
            {"PYTHONPATH": str(f["no_wandb"])},
        ),
        (
            "lr_find: an empty range (min_lr above max_lr)",
            ["seqsent.lr_find", *TINY, "lr_find.min_lr=1", "lr_find.max_lr=0.1"],
        ),
        ("pretrain: `lm_data.bptt=1`", ["seqsent.pretrain", "hydra.run.dir=scratch_run", *TINY_LM, "lm_data.bptt=1"]),
        (
            "pretrain: `lm_data.direction=sideways`",
            ["seqsent.pretrain", "hydra.run.dir=scratch_run", *TINY_LM, "lm_data.direction=sideways"],
        ),
        (
            "pretrain: `init_from=` a classifier checkpoint",
            ["seqsent.pretrain", "hydra.run.dir=scratch_run", *TINY_LM, f"init_from={ckpt}"],
        ),
        (
            "pretrain: `init_from=` with another `lm.num_layers`",
            ["seqsent.pretrain", "hydra.run.dir=scratch_run", *TINY_LM, "lm.num_layers=2", f"init_from={f['lm']}"],
        ),
        ("fine-tune from a classifier checkpoint", [*train, *TINY, f"model.pretrained={ckpt}"]),
        (
            "fine-tune with another `data.vocab_size`",
            [*train, *TINY, "data.vocab_size=5000", f"model.pretrained={f['lm']}"],
        ),
        ("eval a language model checkpoint", ["seqsent.eval", f"ckpt_path={f['lm']}"]),
        ("word vectors file that does not exist", [*train, *TINY, f"model.pretrained_embeddings={d / 'none.txt'}"]),
        ("eval into a training run's directory", ["seqsent.eval", f"ckpt_path={ckpt}", f"hydra.run.dir={f['good']}"]),
        ("eval without `ckpt_path=`", ["seqsent.eval"]),
        ("eval with a bare checkpoint path", ["seqsent.eval", f"ckpt_path={ckpt}", str(ckpt)]),
        ("checkpoint does not exist", ["seqsent.eval", f"ckpt_path={d / 'missing.ckpt'}"]),
        ("truncated checkpoint", ["seqsent.eval", f"ckpt_path={d / 'truncated.ckpt'}"]),
        ("file that is not a checkpoint", ["seqsent.eval", f"ckpt_path={d / 'notes.ckpt'}"]),
        ("checkpoint that needs unsafe unpickling", ["seqsent.eval", f"ckpt_path={d / 'pickle.ckpt'}"]),
        ("checkpoint with a garbled `max_len` (the string '200')", ["seqsent.eval", f"ckpt_path={d / 'garbled.ckpt'}"]),
        ("checkpoint written by seqsent 0.1", ["seqsent.eval", f"ckpt_path={d / 'old.ckpt'}"]),
        (
            "eval on data of another class count",
            ["seqsent.eval", f"ckpt_path={ckpt}", "data=imdb", f"data.path={f['three_classes']}"],
        ),
        (
            "gradflow onto an existing `out=` file",
            ["seqsent.gradflow", "hydra.run.dir=scratch_run", f"ckpt_path={ckpt}", f"out={d / 'figure.png'}"],
        ),
        ("predict: empty string", ["seqsent.predict", f"ckpt_path={ckpt}", "text="]),
        ("predict: empty file", ["seqsent.predict", f"ckpt_path={ckpt}", f"file={d / 'empty.txt'}"]),
        ("predict: `file=` is a directory", ["seqsent.predict", f"ckpt_path={ckpt}", f"file={d / 'reviews'}"]),
        ("predict: 1 MB review (works)", ["seqsent.predict", f"ckpt_path={ckpt}", f"file={d / 'mb.txt'}"]),
    ]


def message(proc: subprocess.CompletedProcess) -> list[str]:
    """What the user reads: seqsent's `error: ...` line; else the exception a traceback ends in; else
    Hydra's own message (without its hint about HYDRA_FULL_ERROR and its config search path); for a
    command that works, its warnings (from the category on: `UserWarning: ...`), else the last line of its output."""
    lines = [line.strip() for line in proc.stderr.splitlines() if line.strip()]
    if not proc.returncode:
        warnings = [line[match.start() :] for line in lines if (match := re.search(r"\w+Warning: ", line))]
        return warnings or (proc.stdout.strip().splitlines() or [""])[-1:]
    errors = [line for line in lines if line.startswith("error: ")]
    if errors:
        return errors[-1:]
    if "Traceback" in proc.stderr:  # the exception raised first, e.g. `ValueError: ...`
        return [next(line for line in lines if re.match(r"[\w.]+(Error|Exception): ", line))]
    if "Config search path:" in lines:
        lines = lines[: lines.index("Config search path:")]
    return [line for line in lines if not line.startswith("Set the environment variable HYDRA_FULL_ERROR")]


def code(line: str) -> str:
    """`line` as markdown code (between double backticks where it holds one)."""
    return f"`` {line} ``" if "`" in line else f"`{line}`"


def digests(root: Path) -> dict[str, str]:
    """Every file under `root` with a hash of its bytes."""
    files = (p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def catalogue(tmp: Path) -> str:
    """The markdown table of every case (paths under `tmp` shown as `<tmp>`)."""
    os.environ["SEQSENT_CACHE_DIR"] = str(tmp / "cache")
    print("making fixtures (a tiny training run) ...", file=sys.stderr, flush=True)
    fixtures = make_fixtures(tmp)
    all_cases = cases(fixtures)
    rows = list(HEADER)
    for i, (name, argv, *env) in enumerate(all_cases, 1):
        argv = [a.replace("hydra.run.dir=scratch_run", f"hydra.run.dir=scratch_run_{i}") for a in argv]
        before = digests(tmp)
        proc = run(argv, tmp, *env)
        after = digests(tmp)
        changed = sorted(p for p, digest in before.items() if after.get(p) != digest)
        shown = "<br>".join(map(code, message(proc)))
        shown = shown.replace(str(tmp), "<tmp>").replace("|", "\\|").replace("\t", " ")
        traceback = "yes" if "Traceback" in proc.stderr else "no"
        rows.append(f"| {name} | {proc.returncode} | {shown} | {traceback} | {', '.join(changed) or 'none'} |")
        print(f"[{i}/{len(all_cases)}] {name}: exit {proc.returncode}", file=sys.stderr, flush=True)
    return "\n".join(rows)


def read_catalogue(text: str) -> str:
    """The table between the markers of a page."""
    if START not in text or END not in text.split(START, 1)[1]:
        raise SeqsentError(f"the page lacks the lines {START} ... {END}: add them where the table goes")
    return text.split(START, 1)[1].split(END, 1)[0].strip()


def write_catalogue(page: Path, table: str) -> None:
    """Replace the table between the markers of `page` (a new page holds the markers and the table)."""
    text = page.read_text(encoding="utf-8") if page.exists() else f"# Bad inputs\n\n{START}\n{END}\n"
    old = read_catalogue(text)
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    page.write_text(f"{head}{START}\n{table}\n{END}{tail}", encoding="utf-8")
    print(f"wrote {page} ({'unchanged' if old == table else 'changed'})", file=sys.stderr)


@report_errors
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=PAGE, help=f"page with the catalogue markers (default {PAGE})")
    args = parser.parse_args()
    if args.out.exists():
        read_catalogue(args.out.read_text(encoding="utf-8"))  # refuse before the slow part
    with tempfile.TemporaryDirectory() as tmp:
        table = catalogue(Path(tmp).resolve())
    print(table)
    write_catalogue(args.out, table)


if __name__ == "__main__":
    main()
