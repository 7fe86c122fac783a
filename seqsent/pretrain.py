"""Pretrain an LSTM language model on a dataset's training and unlabeled text (ULMFiT's first stage).

    python -m seqsent.pretrain                                   # IMDB, the CPU recipe (conf/lm/small.yaml)
    python -m seqsent.pretrain lm=awd_lstm trainer=gpu           # ULMFiT's AWD-LSTM sizes, on a GPU
    python -m seqsent.pretrain lm_data.direction=backward        # the backward model (each review reversed)
    python -m seqsent.pretrain data=synthetic trainer.max_epochs=1   # a smoke run on generated reviews
    python -m seqsent.pretrain ckpt_path=RUN/checkpoints/last.ckpt   # resume RUN in place
    python -m seqsent.pretrain data=sst2 init_from=RUN/checkpoints/<best>.ckpt   # go on on another dataset's text
    python -m seqsent.train model.pretrained=RUN/checkpoints/<best>.ckpt   # then fine-tune a classifier

The text is the classifier's training part and the unlabeled reviews, never its validation or test reviews
(`seqsent.data.lm.LanguageModelDataModule`, settings `lm_data.*`); the model is `lm.*`
(`seqsent.models.language_model.LanguageModel`). Writes into the Hydra run dir as `seqsent.train` does:
`checkpoints/` (best on val/ppl, and last), `tensorboard/`, `metrics.json` (`val/ppl_best`, the best held-out
perplexity, and the last epoch's `val/ppl`; tokens per second, seconds, the text's statistics). The held-out
text is documents of the language model's own text, never the classifier's validation or test reviews.
Returns `optimized_metric`.

`init_from=LM.ckpt` starts from a language model's weights instead of a fresh one and keeps its vocabulary, sizes
and direction (ULMFiT's second stage: the language model fine-tuned on the target dataset's text before the
classifier is); the command's `lm.*` settings other than the sizes (dropouts, rates, schedule) apply.
"""

from __future__ import annotations

from typing import Any

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from seqsent.allocator import keep_freed_memory
from seqsent.data.lm import LanguageModelDataModule
from seqsent.errors import SeqsentError, report_job_errors
from seqsent.finetune import LanguageModelCheckpoint, check_same, check_vocabulary, override_keys, read_language_model
from seqsent.reliability import DATA_KEY
from seqsent.train import (
    SPEED_ONLY_DATA,
    begin_run,
    differing,
    finish_run,
    fit_run,
    record_run,
    resolve_resume,
    run_metrics,
    summary,
)
from seqsent.utils import config_dir, quiet_lightning, register_resolvers

register_resolvers()

SPEED_ONLY_LM_DATA = ("cache_dir",)  # lm_data settings a resume may change
SHOWN = ("val/ppl_best", "val/ppl")  # in the final summary
# the language model settings init_from's checkpoint decides
ARCHITECTURE = ("vocab_size", "embed_dim", "hidden_size", "num_layers", "tie_weights", "adaptive_cutoffs", "pad_id")


@report_job_errors
def pretrain(cfg: DictConfig) -> dict:
    """Fit the language model, write `metrics.json`; returns the metrics."""
    keep_freed_memory()
    start = start_from(cfg)  # before the run's config is recorded: init_from decides the vocabulary and sizes
    run_dir, first = begin_run(cfg)
    ckpt_path = resolve_resume(cfg, run_dir, lm_setting_changes)
    record_run(cfg, run_dir, first, ckpt_path)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    # the text's settings first (their checks name lm_data.direction, which lm.direction follows), then the model's
    datamodule = instantiate(cfg.lm_data, classifier=instantiate(cfg.data))
    check_lm(cfg)
    model = instantiate(cfg.lm, **lm_settings(cfg.lm, vocabulary_size(datamodule, cfg.lm.get("vocab_size"))))
    if first:
        print(datamodule.summary(), flush=True)
    if start is not None and ckpt_path is None:  # a resumed run's weights come from its checkpoint
        model.net.load_state_dict(start.weights | start.decoder)
        count = sum(v.numel() for v in model.net.parameters())
        print(f"init_from: all {count:,} weights from the {start.direction} language model {start.path}", flush=True)
    trainer, loggers, train_seconds = fit_run(cfg, model, datamodule, run_dir, ckpt_path, first, section="lm")
    checkpoint = trainer.checkpoint_callback
    best_score = getattr(checkpoint, "best_model_score", None)
    last_ppl = trainer.callback_metrics.get("val/ppl")
    metrics: dict[str, Any] = {
        "val/ppl_best": float(best_score) if best_score is not None else float("nan"),
        "val/ppl": float(last_ppl) if last_ppl is not None else float("nan"),
        **run_metrics(trainer, model, datamodule, cfg, run_dir, train_seconds),
        "tokens_trained": model.tokens_trained,  # in this process (a resumed run: since the resume)
        "tokens_per_second": round(model.tokens_trained / train_seconds, 1) if train_seconds > 0 else None,
        "lm_data": dict(datamodule.stats),
    }
    notes = [f"{metrics['tokens_per_second'] or 0:,.0f} tokens/s (validation included)"]
    if metrics["best_ckpt"]:
        notes.append(f"fine-tune: {fine_tune_command(cfg.lm_data.direction, metrics['best_ckpt'])}")
    finish_run(trainer, loggers, metrics, run_dir, lambda hints: summary(metrics, run_dir, hints, SHOWN, notes))
    return metrics


def fine_tune_command(direction: str, ckpt: str) -> str:
    """The command that fine-tunes the checkpoint `ckpt` of a `direction` language model with the ULMFiT recipe
    (another dataset than IMDB: add data=...)."""
    recipe = "ulmfit_imdb_backward" if direction == "backward" else "ulmfit_imdb"
    return f"python -m seqsent.train experiment={recipe} model.pretrained={ckpt}"


def start_from(cfg: DictConfig) -> LanguageModelCheckpoint | None:
    """The language model of `init_from` (None without one), with `cfg` made its: its vocabulary
    (`data.tokenizer_json`), `lm_data.vocab_size`, `lm_data.direction` and the `ARCHITECTURE` settings of `lm`.
    A data setting that changes its vocabulary, or one of these the command sets otherwise, is a one-line error."""
    path = cfg.get("init_from")
    if not path:
        return None
    lm = read_language_model(path, source="init_from")
    explicit = override_keys(HydraConfig.get().overrides.task) if HydraConfig.initialized() else set()
    check_vocabulary(cfg.data, lm, explicit)
    recorded = {key: lm.hyper_parameters[key] for key in ARCHITECTURE}
    recorded["adaptive_cutoffs"] = list(recorded["adaptive_cutoffs"])
    check_same("lm_data.direction", cfg.lm_data.direction, lm.direction, explicit, lm)
    check_same("lm_data.vocab_size", cfg.lm_data.vocab_size, lm.vocab_size, explicit, lm)
    for key, value in recorded.items():
        configured = cfg.lm.get(key)
        configured = OmegaConf.to_container(configured) if OmegaConf.is_list(configured) else configured
        check_same(f"lm.{key}", configured, value, explicit, lm)
    with open_dict(cfg):
        cfg.data.tokenizer_json = lm.tokenizer_json
        cfg.lm_data.vocab_size, cfg.lm_data.direction = lm.vocab_size, lm.direction
        for key, value in recorded.items():
            cfg.lm[key] = value
    return lm


def lm_settings(lm_cfg: DictConfig, vocab_size: int) -> dict[str, Any]:
    """The language model's settings that depend on the vocabulary: its size, and the adaptive softmax's
    cutoffs below it (a small vocabulary, as generated reviews have, gets fewer clusters or a full softmax)."""
    cutoffs = [int(c) for c in lm_cfg.get("adaptive_cutoffs") or []]
    return {"vocab_size": vocab_size, "adaptive_cutoffs": [c for c in cutoffs if c < vocab_size]}


def check_lm(cfg: DictConfig) -> None:
    """Build the language model on the meta device (no memory, no weights drawn, the random state kept), so a
    bad `lm.*` setting is refused before the text is prepared."""
    vocab_size = cfg.lm.get("vocab_size") or cfg.lm_data.vocab_size
    with torch.random.fork_rng(devices=[]), torch.device("meta"):
        instantiate(cfg.lm, **lm_settings(cfg.lm, vocab_size))


def vocabulary_size(datamodule: LanguageModelDataModule, configured: int | None) -> int:
    """The size of the vocabulary built on the text (prepared and set up here); a configured `lm.vocab_size`
    that disagrees is a `SeqsentError`."""
    datamodule.prepare_data()
    datamodule.setup("fit")
    found = int(datamodule.stats["vocab_size"])
    if configured is not None and configured != found:
        raise SeqsentError(
            f"lm.vocab_size={configured} but the vocabulary built on the text has {found} tokens "
            f"(lm_data.vocab_size={datamodule.vocab_size}): use lm.vocab_size=null (the vocabulary's size)"
        )
    return found


def lm_setting_changes(cfg: DictConfig, ckpt: dict[str, Any]) -> list[str]:
    """`lm.*`, `data.*` and `lm_data.*` settings configured otherwise than the checkpoint's run had them."""
    recorded = ckpt["hyper_parameters"]
    lm = OmegaConf.to_container(cfg.lm, resolve=True)
    if isinstance(recorded.get("vocab_size"), int):
        lm |= lm_settings(cfg.lm, lm.get("vocab_size") or recorded["vocab_size"])
    data = ckpt.get(DATA_KEY) if isinstance(ckpt.get(DATA_KEY), dict) else {}
    found = differing("lm", lm, recorded)
    for section, ignored in (("data", SPEED_ONLY_DATA), ("lm_data", SPEED_ONLY_LM_DATA)):
        configured = OmegaConf.to_container(cfg[section], resolve=True)
        found += differing(section, configured, data.get(section) or {}, ignored)
    return found


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="pretrain")
def _hydra_main(cfg: DictConfig) -> float | None:
    metrics = pretrain(cfg)
    value = metrics.get(cfg.get("optimized_metric") or "")
    return float(value) if value is not None else None


def main() -> None:
    """Console entry point: Hydra's command line (`--help`; Hydra names unknown keys and options)."""
    quiet_lightning()
    _hydra_main()


if __name__ == "__main__":
    main()
