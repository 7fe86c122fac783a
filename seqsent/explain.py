"""Word attributions: integrated gradients (Captum) over the embedded review, as an HTML page and JSON.

    python -m seqsent.explain ckpt_path=outputs/.../checkpoints/last.ckpt text="It's not bad, it's great."
    python -m seqsent.explain ckpt_path=... file=reviews.txt          # one review per line, as seqsent.predict
    python -m seqsent.explain ckpt_path=... text="..." text="..." target=positive n_steps=200 out=attributions/

Needs `pip install 'seqsent[explain]'` (Captum). `text=` is taken verbatim, as by seqsent.predict (a
review's quotes, commas and brackets need no Hydra quoting) and may repeat; every other setting is
Hydra's (conf/explain.yaml). Writes into `out` (default: a directory of its own,
`outputs/<date>/<time>_explain_<id>`, no `.hydra` record, so seqsent.compare never takes it for a run):
`explain.html`, one self-contained page (no scripts, no external files) with each review's words shaded
by attribution, green towards the explained class and red against it, and `explain.json`, per review
its tokens, their attributions, the prediction, the class probabilities and the convergence delta.

What is attributed: the encoder's input, each step's word vector with the hashed bigram/trigram vectors
ending at it (`TextClassifierNet.embed`), through Captum's `LayerIntegratedGradients` on the output of
`net.embed_dropout` (the identity in eval mode; its output is that input, batch first). `net.embedding`
would be the wrong layer: it runs time-major (Captum scales along dim 0) and leaves the n-gram tables
out. A token's attribution is the sum over its step's entries: its word's and those of the n-grams that
end at it (the bigram "not bad" counts for "bad").
Baseline: the review with every token replaced by the padding id (same length): the padding row of the
word embedding (all zeros, as `padding_idx` keeps it; a trained row under `model.unmasked_len`, whose
padding steps then get attribution 0) and the padding n-grams' vectors.
Target: `target=` a class id or label name, default each review's predicted class. A multi-class
model's score for class c is its logit; a two-class model has one logit z, the log-odds of class 1,
so class 1 is explained with z and class 0 with -z.
Completeness: the attributions sum to score(review) - score(baseline) up to the integral's error,
reported per review as `delta` (Gauss-Legendre quadrature with `n_steps` points; raise it when
|delta| is not small against the difference: the summary counts those reviews; where a score changes
abruptly along the path, as a plain RNN's can, delta shrinks slowly).
`batch_size=` interpolation points per forward/backward pass (Captum's `internal_batch_size`),
`max_chars=` (reviews cut before tokenizing), `device=` (cpu|cuda). On a GPU the gradients are taken
with cuDNN switched off (`torch.backends.cudnn.flags(enabled=False)`): cuDNN's RNN backward runs only
in training mode, so PyTorch's own kernels run the model in eval mode instead (no dropout).
"""

from __future__ import annotations

import html
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from tokenizers import Tokenizer
from torch import Tensor

from seqsent.checkpoint import label_names, load_classifier, preprocessing_of
from seqsent.data.batching import Collator, truncate
from seqsent.data.vocab import UNK, encode, tokenizer_from_json
from seqsent.errors import SeqsentError, check_types, prediction_options, report_errors
from seqsent.models import SequenceClassifier
from seqsent.predict import check_device, read_reviews
from seqsent.utils import atomic_write_text, check_run_dir_free, config_dir, register_resolvers, write_json

register_resolvers()
HTML_FILE, JSON_FILE = "explain.html", "explain.json"
TEXT_ARG = "text="
USAGE = 'python -m seqsent.explain ckpt_path=RUN/checkpoints/last.ckpt text="a review" | file=reviews.txt'
LOOSE = 0.05  # a |delta| over this share of |score - baseline_score| is named in the summary


@dataclass
class Explanation:
    """One review's attributions: `tokens` as the review writes them (the ones the model reads, after the
    checkpoint's truncation) with an attribution each; `score` and `baseline_score` are the explained
    class's score on the review and on the baseline, `delta` = sum(attributions) - (score - baseline_score)."""

    text: str
    tokens: list[str]
    attributions: list[float]
    prediction: int
    probabilities: list[float]
    target: int
    score: float
    baseline_score: float
    delta: float
    truncated: bool


def class_names(model: SequenceClassifier) -> list[str]:
    """The checkpoint's label names, else `negative`/`positive` (two classes) or the class ids."""
    classes = model.hparams.num_classes
    return label_names(model) or (["negative", "positive"] if classes == 2 else [str(c) for c in range(classes)])


def to_scores(logits: Tensor) -> Tensor:
    """A score per class (B, C): the logits, or (-z, z) for a two-class model's one logit z (B,)."""
    return torch.stack([-logits, logits], dim=-1) if logits.dim() == 1 else logits


def class_scores(model: SequenceClassifier) -> Callable[[Tensor, Tensor], Tensor]:
    """(tokens, lengths) -> `to_scores` of the model's logits: the function whose scores are attributed."""
    return lambda tokens, lengths: to_scores(model(tokens, lengths))


def attributor(model: SequenceClassifier) -> Any:
    """Captum's `LayerIntegratedGradients` of `class_scores` at the encoder's input (the output of
    `net.embed_dropout`); a one-line error naming the extra when Captum is missing."""
    try:
        from captum.attr import LayerIntegratedGradients
    except ModuleNotFoundError as err:
        if not (err.name or "").startswith("captum"):
            raise
        raise SeqsentError("seqsent.explain needs captum: pip install 'seqsent[explain]'") from None
    return LayerIntegratedGradients(class_scores(model), model.net.embed_dropout)


def resolve_target(target: int | str | None, names: list[str]) -> int | None:
    """`target=` as a class id (a label name or an id), None for each review's predicted class."""
    if target is None or (isinstance(target, int) and not isinstance(target, bool) and 0 <= target < len(names)):
        return target
    if isinstance(target, str) and target in names:
        return names.index(target)
    raise SeqsentError(
        f"target={target!r}: use a class id 0..{len(names) - 1}, a label name ({', '.join(names)}) or null "
        "(each review's predicted class)"
    )


def words_of(tokenizer: Tokenizer, text: str) -> list[str]:
    """`text`'s tokens as written in it (case kept), one per id `encode` gives (`<unk>` for a review of none)."""
    encoding = tokenizer.encode(text, add_special_tokens=False)
    return [text[start:end] for start, end in encoding.offsets] or [UNK]


def read_steps(model: SequenceClassifier, length: int, steps: int) -> slice:
    """The steps of the encoder's `steps`-long input that hold a review of `length` tokens: the first
    ones (left-aligned), under `unmasked_len` the last (the padding is before them)."""
    return slice(steps - min(length, steps), steps) if model.net.unmasked_len else slice(0, length)


def explain_texts(
    model: SequenceClassifier,
    texts: Sequence[str],
    target: int | str | None = None,
    n_steps: int = 50,
    batch_size: int = 256,
    max_chars: int = 100_000,
    progress: Callable[[int, int], None] | None = None,
) -> list[Explanation]:
    """Integrated-gradients attributions of each of `texts` (the module docstring says what is attributed,
    against which baseline and for which class); `progress(done, total)` is called after each review."""
    if n_steps < 1:
        raise SeqsentError(f"n_steps={n_steps}: use a whole number >= 1, e.g. 50")
    prep = preprocessing_of(model, "the model")
    tokenizer = tokenizer_from_json(prep["tokenizer_json"])
    collate = Collator(prep["max_len"], prep["padding"], prep["truncation"])
    target = resolve_target(target, class_names(model))
    method = attributor(model)
    found = []
    for done, text in enumerate(texts, 1):
        found.append(explain_text(model, method, tokenizer, collate, text[:max_chars], target, n_steps, batch_size))
        if progress is not None:
            progress(done, len(texts))
    return found


def explain_text(
    model: SequenceClassifier,
    method: Any,
    tokenizer: Tokenizer,
    collate: Collator,
    text: str,
    target: int | None,
    n_steps: int,
    batch_size: int,
) -> Explanation:
    """One review's `Explanation` with the `attributor` `method` (`explain_texts` says the rest)."""
    ids, _ = encode(tokenizer, [text])
    batch = collate([(ids, 0)])
    device = next(model.parameters()).device
    tokens, lengths = batch["tokens"].to(device), batch["lengths"].to(device)
    baseline = torch.full_like(tokens, model.net.pad_id)
    with torch.no_grad():
        logits = model(tokens, lengths)
        review_scores, baseline_scores = to_scores(logits)[0], to_scores(model(baseline, lengths))[0]
        probs = model.probabilities(logits)[0]
    probs = torch.stack([1 - probs, probs]) if probs.dim() == 0 else probs
    prediction = int(probs.argmax())
    target = prediction if target is None else target
    with torch.enable_grad(), torch.backends.cudnn.flags(enabled=False):
        layer_attr = method.attribute(
            tokens, baseline, target=target, additional_forward_args=(lengths,), n_steps=n_steps,
            internal_batch_size=batch_size,
        )  # fmt: skip
    per_step = layer_attr[0].sum(-1).double().cpu()
    words = truncate(words_of(tokenizer, text), collate.max_len, collate.truncation)
    read = per_step[read_steps(model, len(words), len(per_step))]
    words = words[len(words) - len(read) :]  # under unmasked_len: the last ones, as the model reads them
    score, base = float(review_scores[target]), float(baseline_scores[target])
    return Explanation(
        text=text, tokens=words, attributions=read.tolist(), prediction=prediction,
        probabilities=probs.float().cpu().tolist(), target=target, score=score, baseline_score=base,
        delta=float(per_step.sum()) - (score - base), truncated=len(words) < len(ids),
    )  # fmt: skip


def shade(value: float, largest: float) -> str:
    """A token's background: green for a positive attribution, red for a negative one, as strong as
    |value| is against the review's largest."""
    alpha = 0.85 * abs(value) / largest if largest > 0 else 0.0
    rgb = "0, 160, 60" if value >= 0 else "220, 30, 30"
    return f"rgba({rgb}, {alpha:.3f})"


def review_html(number: int, found: Explanation, names: list[str]) -> str:
    """One review's block: its prediction, the explained class, completeness, and its shaded tokens."""
    largest = max((abs(a) for a in found.attributions), default=0.0)
    spans = " ".join(
        f'<span class="tok" style="background: {shade(a, largest)}" title="{a:+.4f}">{html.escape(t)}</span>'
        for t, a in zip(found.tokens, found.attributions)
    )
    name = html.escape
    cut = f" (the {len(found.tokens)} tokens the model reads)" if found.truncated else ""
    return (
        f'<div class="review"><p class="meta">#{number} &middot; prediction <b>{name(names[found.prediction])}</b> '
        f"(p={found.probabilities[found.prediction]:.3f}) &middot; explained: <b>{name(names[found.target])}</b> "
        f"&middot; sum of attributions {sum(found.attributions):+.4f} = score {found.score:+.4f} &minus; baseline "
        f"{found.baseline_score:+.4f} (delta {found.delta:+.2g}){cut}</p>\n<p>{spans}</p></div>"
    )


def page_html(explanations: Sequence[Explanation], names: list[str], about: str) -> str:
    """The self-contained HTML page of every review's attributions."""
    reviews = "\n".join(review_html(n, found, names) for n, found in enumerate(explanations, 1))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>seqsent word attributions</title>
<style>
body {{ font-family: sans-serif; max-width: 60em; margin: 2em auto; padding: 0 1em; line-height: 1.9; }}
.review {{ border-top: 1px solid #ccc; margin-top: 1.2em; }}
.meta {{ color: #444; font-size: 0.9em; margin-bottom: 0.2em; }}
.tok {{ padding: 0.1em 0.15em; border-radius: 0.2em; }}
</style></head><body>
<h1>Word attributions</h1>
<p>{html.escape(about)}</p>
<p>Green: towards the explained class; red: against it; the stronger the shade, the larger the attribution
against the review's largest. Hover a word for its value.</p>
{reviews}
</body></html>
"""


def split_texts(argv: list[str]) -> tuple[list[str], list[str]]:
    """The `text=` arguments' values, verbatim, and the other arguments (Hydra's)."""
    texts = [arg.lstrip("+")[len(TEXT_ARG) :] for arg in argv if arg.lstrip("+").startswith(TEXT_ARG)]
    return texts, [arg for arg in argv if not arg.lstrip("+").startswith(TEXT_ARG)]


@report_errors
def explain(cfg: DictConfig, texts: list[str]) -> list[Explanation]:
    """Attribute `texts` and the reviews of `cfg.file` with `cfg.ckpt_path`'s model; write the HTML page and JSON."""
    if OmegaConf.is_missing(cfg, "ckpt_path"):
        raise SeqsentError(f"no checkpoint given: {USAGE}")
    texts = [*texts, *(read_reviews(cfg.file) if cfg.get("file") else [])]
    if not texts:
        raise SeqsentError(f"no review given: {USAGE} (text= may repeat)")
    check_types(explain_texts, {"target": cfg.target, "n_steps": cfg.n_steps})
    batch_size, max_chars = prediction_options(texts, {k: [str(cfg[k])] for k in ("batch_size", "max_chars")})
    out = Path(HydraConfig.get().runtime.output_dir)  # `out`, resolved once (its default has the time in it)
    fix = "leave out= unset (each explanation gets a new directory) or choose an empty one"
    check_run_dir_free(out, "explanation", fix, (HTML_FILE, JSON_FILE))
    check_device(str(cfg.device))
    model = load_classifier(cfg.ckpt_path, map_location=cfg.device)
    every = max(1, len(texts) // 10)

    def progress(done: int, total: int) -> None:
        if total > 1 and (done % every == 0 or done == total):
            print(f"explained {done}/{total} reviews", file=sys.stderr, flush=True)

    found = explain_texts(model, texts, cfg.target, cfg.n_steps, batch_size, max_chars, progress)
    write_outputs(found, class_names(model), out, cfg)
    return found


def write_outputs(found: list[Explanation], names: list[str], out: Path, cfg: DictConfig) -> None:
    """`explain.html` and `explain.json` in `out`, and the summary naming them."""
    about = f"{cfg.ckpt_path}: integrated gradients, {cfg.n_steps} steps, baseline: padding tokens"
    atomic_write_text(out / HTML_FILE, page_html(found, names, about), "out=")
    settings = {"ckpt_path": str(cfg.ckpt_path), "n_steps": cfg.n_steps, "baseline": "padding", "target": cfg.target}
    write_json(out / JSON_FILE, {**settings, "label_names": names, "reviews": [asdict(f) for f in found]}, "out=")
    loose = sum(abs(f.delta) > LOOSE * abs(f.score - f.baseline_score) + 1e-3 for f in found)
    print(f"\n== seqsent explain ==\n  {len(found)} review(s), largest |delta| {max(abs(f.delta) for f in found):.2g}")
    if loose:
        print(f"  {loose} review(s) with |delta| over {LOOSE:.0%} of the score difference: raise n_steps={cfg.n_steps}")
    print(f"  {out / HTML_FILE}\n  {out / JSON_FILE}", flush=True)


def main() -> None:
    """Console entry point: the `text=` arguments verbatim, the rest Hydra's command line."""
    texts, sys.argv[1:] = split_texts(sys.argv[1:])

    @hydra.main(version_base="1.3", config_path=config_dir(), config_name="explain")
    def task(cfg: DictConfig) -> None:
        explain(cfg, texts)

    task()


if __name__ == "__main__":
    main()
