"""Fine-tuning a language model into a classifier (ULMFiT): `python -m seqsent.train model.pretrained=LM.ckpt`.

`read_language_model` reads a checkpoint of `python -m seqsent.pretrain` (safely, `weights_only=True`); `configure`
makes the run's config the language model's before the data is built: its vocabulary (`data.tokenizer_json`,
`data.vocab_size`), `model.vocab_size`, `model.embed_dim`, and the `awd_lstm` encoder of its sizes and direction
(`reverse` for a backward model) with concat pooling; `copy_weights` then copies its embedding and encoder weights,
by name, into the classifier's network. Settings that contradict the language model are one-line errors.

What the language model fixes: the vocabulary, the embedding size, the encoder's name, `hidden_size`, `num_layers`,
`output_size` and `reverse`; no n-gram tables (`bigram_buckets`, `trigram_buckets` 0: they would widen the encoder's
input) and `unmasked_len` 0. What the run chooses: the encoder's `weight_dropout`, `hidden_dropout` and `pooling`
(from `model.encoder` when it is the awd_lstm group, `model/encoder=awd_lstm`; else the language model's dropouts
and concat pooling), and every other model, data and trainer setting. The classifier records the path
(`model.pretrained`) only: its checkpoints load without the language model.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict
from torch import Tensor, nn

from seqsent.checkpoint import missing, read_checkpoint
from seqsent.errors import SeqsentError
from seqsent.models.classifier import PREPROCESSING_KEY
from seqsent.models.language_model import LM_FORMAT_KEY

ENCODER = "awd_lstm"
FIXED = ("name", "hidden_size", "num_layers", "output_size", "reverse")  # the encoder settings the LM decides
CHOSEN = ("weight_dropout", "hidden_dropout", "pooling")  # those the run chooses
WITHOUT = ("bigram_buckets", "trigram_buckets", "unmasked_len")  # model settings a fine-tuned net must have at 0
COPIED = ("embedding.", "encoder.")  # the network's parts that come from the language model
REQUIRED = "required"  # an experiment's model.pretrained until the command gives one


@dataclass(frozen=True)
class LanguageModelCheckpoint:
    """What a classifier takes from a language model checkpoint: its vocabulary, sizes and weights."""

    path: str
    tokenizer_json: str
    punctuation: str
    direction: str
    vocab_size: int
    embed_dim: int
    encoder: dict[str, Any]  # the awd_lstm encoder spec of its sizes, dropouts and direction, concat pooling
    weights: dict[str, Tensor] = field(repr=False)  # keyed as in `TextClassifierNet`: embedding.*, encoder.*
    source: str = "model.pretrained"  # the setting that named it (in error messages)
    hyper_parameters: dict[str, Any] = field(default_factory=dict, repr=False)  # its LanguageModel's settings
    decoder: dict[str, Tensor] = field(default_factory=dict, repr=False)  # its other weights (the output layer)


def read_language_model(path: str | Path, source: str = "model.pretrained") -> LanguageModelCheckpoint:
    """The language model checkpoint at `path` (named by the setting `source`); a one-line `SeqsentError` for
    anything else (a classifier's checkpoint included)."""
    if not Path(path).expanduser().is_file():
        raise SeqsentError(
            f"{source}: checkpoint {missing(path)}: pass a language model checkpoint written by python -m "
            "seqsent.pretrain (<its run dir>/checkpoints/<name>.ckpt)"
        )
    ckpt = read_checkpoint(path)
    if LM_FORMAT_KEY not in ckpt:  # read_checkpoint checked the format of either kind
        raise SeqsentError(
            f"{source}={path} is a classifier checkpoint (seqsent.train), not a language model: pass one "
            "written by python -m seqsent.pretrain"
        )
    hp, prep = ckpt["hyper_parameters"], ckpt.get(PREPROCESSING_KEY)
    weights = {k.removeprefix("net."): v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
    embedding = weights.get("embedding.weight")
    if not isinstance(prep, dict) or not isinstance(prep.get("tokenizer_json"), str) or embedding is None:
        raise SeqsentError(f"{source}={path} is damaged: no vocabulary or no embedding weights in it")
    direction = prep.get("direction", hp.get("direction", "forward"))
    vocab_size, embed_dim = embedding.shape
    encoder = {
        "name": ENCODER,
        "hidden_size": hp["hidden_size"],
        "num_layers": hp["num_layers"],
        "output_size": embed_dim,
        "weight_dropout": hp.get("weight_dropout", 0.5),
        "hidden_dropout": hp.get("hidden_dropout", 0.3),
        "pooling": "concat",
        "reverse": direction == "backward",
    }
    return LanguageModelCheckpoint(
        path=str(path),
        tokenizer_json=prep["tokenizer_json"],
        punctuation=prep.get("punctuation", "keep"),
        direction=direction,
        vocab_size=int(vocab_size),
        embed_dim=int(embed_dim),
        encoder=encoder,
        weights={k: v for k, v in weights.items() if k.startswith(COPIED)},
        source=source,
        hyper_parameters=dict(hp),
        decoder={k: v for k, v in weights.items() if not k.startswith(COPIED)},
    )


def override_keys(overrides: Iterable[str]) -> set[str]:
    """The config keys a command's overrides set (`data.vocab_size=5` -> `data.vocab_size`, `+model.x=1` ->
    `model.x`, `model/encoder=gru` -> `model/encoder`); deletions (`~key`) set nothing."""
    return {o.split("=", 1)[0].lstrip("+") for o in overrides if "=" in o and not o.startswith("~")}


def configure(cfg: DictConfig, lm: LanguageModelCheckpoint, explicit: set[str]) -> None:
    """Make `cfg` (a `seqsent.train` config) the language model's, in place: its vocabulary, sizes and encoder.
    `explicit` are the keys the command set (`override_keys`): one of them that contradicts the language model,
    and a data setting that changes its vocabulary, is a one-line `SeqsentError` naming both values and the fix."""
    check_vocabulary(cfg.data, lm, explicit)
    model = cfg.model
    group = next((k for k in explicit if k in ("model/encoder", "model.encoder")), None)
    if group and OmegaConf.select(cfg, "model.encoder.name") != ENCODER:
        raise SeqsentError(
            f"{group} with model.pretrained: a language model gives the {ENCODER} encoder: drop {group}, or pass "
            f"model/encoder={ENCODER}"
        )
    for key in ("vocab_size", "embed_dim"):
        check_same(f"model.{key}", model.get(key), getattr(lm, key), explicit, lm)
    for key in WITHOUT:
        if f"model.{key}" in explicit and model.get(key):
            raise SeqsentError(
                f"model.{key}={model.get(key)} with model.pretrained: a fine-tuned language model reads word "
                f"vectors alone, as it was trained: drop model.{key}"
            )
    encoder = encoder_spec(model.encoder, lm, explicit)
    with open_dict(cfg):
        cfg.data.tokenizer_json = lm.tokenizer_json
        cfg.data.vocab_size = lm.vocab_size
        model.vocab_size, model.embed_dim = lm.vocab_size, lm.embed_dim
        for key in WITHOUT:
            if key in model:
                model[key] = 0
        model.encoder = encoder


def check_vocabulary(data: DictConfig, lm: LanguageModelCheckpoint, explicit: set[str]) -> None:
    """A one-line error when the data's settings would change the language model's vocabulary."""
    if data.get("punctuation", lm.punctuation) != lm.punctuation:
        raise SeqsentError(
            f"data.punctuation={data.punctuation} but the language model {lm.path} was trained with "
            f"data.punctuation={lm.punctuation}: use data.punctuation={lm.punctuation} (its vocabulary)"
        )
    check_same("data.vocab_size", data.get("vocab_size"), lm.vocab_size, explicit, lm)
    if data.get("tokenizer_json") is not None and data.tokenizer_json != lm.tokenizer_json:
        raise SeqsentError(
            f"data.tokenizer_json is another vocabulary than the language model {lm.path}'s: leave it unset "
            f"({lm.source} gives the language model's)"
        )


def encoder_spec(configured: DictConfig, lm: LanguageModelCheckpoint, explicit: set[str]) -> dict[str, Any]:
    """The fine-tuned encoder: `lm.encoder` with the run's `CHOSEN` settings (from an awd_lstm `configured` group,
    or the command's `model.encoder.*`); a `FIXED` one the command sets otherwise, or a setting awd_lstm lacks,
    is an error."""
    spec = dict(lm.encoder)
    awd = configured.get("name") == ENCODER
    for key in configured:
        name = f"model.encoder.{key}"
        if key in FIXED and name in explicit:
            check_same(name, configured[key], lm.encoder[key], explicit, lm)
        elif key in CHOSEN and (awd or name in explicit):
            spec[key] = configured[key]
        elif name in explicit and key not in FIXED + CHOSEN:
            raise SeqsentError(
                f"{name}: not a setting of the {ENCODER} encoder a language model gives (model.pretrained): "
                f"use one of {sorted(CHOSEN)}"
            )
    return spec


def check_same(name: str, configured: Any, given: Any, explicit: set[str], lm: LanguageModelCheckpoint) -> None:
    if name in explicit and configured != given:
        raise SeqsentError(
            f"{name}={configured} but the language model {lm.path} has {given}: drop {name} ({lm.source} "
            f"sets it) or pass {name}={given}"
        )


def copy_weights(net: nn.Module, lm: LanguageModelCheckpoint) -> str:
    """Copy the language model's embedding and encoder weights into `net` (a `TextClassifierNet` built from the
    settings `configure` gave), by name; returns a line saying what was copied."""
    own = net.state_dict()
    wanted = {k for k in own if k.startswith(COPIED)}
    missing, extra = sorted(wanted - lm.weights.keys()), sorted(lm.weights.keys() - wanted)
    differ = [k for k in sorted(wanted & lm.weights.keys()) if own[k].shape != lm.weights[k].shape]
    if missing or extra or differ:
        first = (missing or extra or differ)[0]
        raise SeqsentError(
            f"model.pretrained={lm.path} does not fit the classifier's network ({len(missing)} weights missing, "
            f"{len(extra)} unexpected, {len(differ)} of another shape, e.g. {first}): fine-tune it with the "
            "seqsent that wrote it"
        )
    net.load_state_dict(lm.weights, strict=False)
    copied = sum(v.numel() for v in lm.weights.values())
    fresh = sum(v.numel() for k, v in own.items() if k not in wanted)
    return (
        f"model.pretrained: copied {len(lm.weights)} tensors ({copied:,} weights: the embedding and "
        f"{lm.encoder['num_layers']} LSTM layers) from the {lm.direction} language model {lm.path}; "
        f"{fresh:,} weights (the head) start fresh"
    )


def prepare(cfg: DictConfig) -> LanguageModelCheckpoint | None:
    """For a `seqsent.train` run with `model.pretrained` set: its language model, with `cfg` configured from it
    (`configure`, the command's overrides from Hydra's record); None without one."""
    path = cfg.model.get("pretrained")
    if not path:
        return None
    if path == REQUIRED:
        raise SeqsentError(
            "model.pretrained=required: this recipe fine-tunes a language model: pass model.pretrained=<its "
            "checkpoint>, written by python -m seqsent.pretrain"
        )
    lm = read_language_model(path)
    configure(cfg, lm, override_keys(HydraConfig.get().overrides.task))
    return lm
