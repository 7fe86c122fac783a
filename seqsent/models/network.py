"""`TextClassifierNet`: token ids -> embedding front end -> encoder -> head, as a plain `nn.Module`.

The front end puts each review's tokens first (either padding side), looks up word vectors and, when
asked for, hashed bigram/trigram vectors (`seqsent.models.ngrams`), and applies word and embedding
dropout. The encoder is any registered one (`seqsent.models.registry`), built from a plain dict; it
sees left-aligned vectors (B, T, D) and true lengths. The head maps its summary to one logit (two
classes) or one per class.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from seqsent.errors import SettingError, check_types
from seqsent.models.dropout import Dropout, WordDropout
from seqsent.models.encoders import left_align, unmasked
from seqsent.models.ngrams import HashedNgrams
from seqsent.models.registry import build_encoder

INITS = ("torch", "keras", "keras_per_gate")
DEFAULT_ENCODER: dict[str, Any] = {"name": "lstm"}


class TextClassifierNet(nn.Module):
    """Logits for padded token ids: `net(tokens (B, T), lengths (B,))`.

    Args:
        vocab_size: rows of the word embedding (the vocabulary's size, padding and OOV ids included).
        num_classes: 2 gives one logit (B,) (binary, for BCE); more gives (B, num_classes).
        embed_dim: size of a word vector.
        encoder: the encoder's spec, `{"name": <registered name>, **settings}` or
            `{"_target_": "package.module.Class", **settings}` (`seqsent.models.registry.build_encoder`);
            None: an LSTM with its defaults.
        dropout: dropout on the encoder's summary, before the head.
        embed_dropout: dropout on every input vector entry.
        word_dropout: drop whole tokens (their vectors) in training.
        bigram_buckets, trigram_buckets: rows of the hashed bigram/trigram tables (0: none); each
            step's n-gram vectors (`bigram_dim` wide) are concatenated to its word vector.
        unmasked_len: N > 0: every review pre-padded to N steps and read whole, padding included
            (Keras without `mask_zero`); 0: the padding is never read.
        init: "torch" (PyTorch's defaults), or "keras"/"keras_per_gate": the embedding and n-gram
            tables uniform(-0.05, 0.05) as Keras' Embedding, and under "keras" a Glorot head with a
            zero bias as Keras' Dense. The encoder's own init is among its settings.
        pad_id: the padding token id.

    Weights are drawn in the order embedding, encoder, head, bigrams, trigrams: a seeded net without
    n-gram tables draws the same numbers whether or not tables could be added.
    """

    def __init__(
        self,
        vocab_size: int = 10_000,
        num_classes: int = 2,
        embed_dim: int = 128,
        encoder: Mapping[str, Any] | None = None,
        dropout: float = 0.0,
        embed_dropout: float = 0.0,
        word_dropout: float = 0.0,
        bigram_buckets: int = 0,
        bigram_dim: int = 64,
        trigram_buckets: int = 0,
        unmasked_len: int = 0,
        init: str = "torch",
        pad_id: int = 0,
    ):
        check_types(TextClassifierNet.__init__, locals(), "model.")
        super().__init__()
        check_settings(locals())
        self.num_classes, self.pad_id, self.unmasked_len = num_classes, pad_id, unmasked_len
        # unmasked_len: the padding is read as a token, so its vector is an ordinary trained row
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=None if unmasked_len else pad_id)
        if init.startswith("keras"):  # Keras' Embedding default: uniform(-0.05, 0.05)
            nn.init.uniform_(self.embedding.weight, -0.05, 0.05)
            if not unmasked_len:
                with torch.no_grad():
                    self.embedding.weight[pad_id].zero_()
        self.word_dropout = WordDropout(word_dropout)
        self.embed_dropout = Dropout(embed_dropout)
        input_size = embed_dim + bigram_dim * ((bigram_buckets > 0) + (trigram_buckets > 0))
        self.encoder = build_encoder(dict(encoder or DEFAULT_ENCODER), input_size)
        outputs = 1 if num_classes == 2 else num_classes
        self.head = nn.Sequential(Dropout(dropout), nn.Linear(self.encoder.output_size, outputs))
        if init == "keras":  # Keras' Dense default: Glorot-uniform kernel, zero bias
            nn.init.xavier_uniform_(self.head[1].weight)
            nn.init.zeros_(self.head[1].bias)
        # made last and only when asked for, so nets without them draw every other weight as before
        self.bigrams = ngram_table(2, bigram_buckets, bigram_dim, pad_id, init)
        self.trigrams = ngram_table(3, trigram_buckets, bigram_dim, pad_id, init)

    def embed(self, tokens: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """The encoder's input: left-aligned vectors (B, T, D) (a batch-first view of time-major ones,
        which the recurrent kernels take without a copy) and the lengths the encoder is to use."""
        if self.unmasked_len:  # every row full length: already left-aligned
            tokens, lengths = unmasked(tokens, lengths, self.unmasked_len, self.pad_id)
        else:
            tokens = left_align(tokens, lengths, self.pad_id)
        steps = tokens.t()
        x = self.embedding(steps)
        phrases = [table(steps) for table in (self.bigrams, self.trigrams) if table is not None]
        if phrases:  # each step's word vector, then its bigram's and trigram's
            x = torch.cat([x, *phrases], dim=-1)
        return self.embed_dropout(self.word_dropout(x.transpose(0, 1))), lengths

    def forward(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        """Logits for padded token ids (B, T), either padding side, and true lengths (B,) >= 1:
        (B,) for two classes, else (B, num_classes)."""
        return self.classify_embedded(*self.embed(tokens, lengths))

    def classify_embedded(self, x: Tensor, lengths: Tensor) -> Tensor:
        """Logits for `embed`'s output: left-aligned vectors (B, T, D) and lengths (adversarial training
        perturbs `x` between the two, `seqsent.models.adversarial`)."""
        logits = self.head(self.encoder(x, lengths))
        return logits.squeeze(-1) if self.num_classes == 2 else logits


def check_settings(values: Mapping[str, Any]) -> None:
    """A one-line `SettingError` for the first network setting out of range."""
    v = values
    if v["num_classes"] < 2:
        raise SettingError(f"model.num_classes={v['num_classes']}: use >= 2 (2: one logit, binary)")
    if v["init"] not in INITS:
        raise SettingError(f"model.init={v['init']!r}: use one of {INITS}")
    if not all(0.0 <= v[p] < 1.0 for p in ("dropout", "embed_dropout", "word_dropout")):
        raise SettingError("model.dropout, model.embed_dropout and model.word_dropout must be in [0, 1)")
    if v["vocab_size"] < 3 or v["embed_dim"] < 1:
        raise SettingError(f"model.vocab_size={v['vocab_size']}, model.embed_dim={v['embed_dim']}: use >= 3 and >= 1")
    if v["trigram_buckets"] < 0:
        raise SettingError(f"model.trigram_buckets={v['trigram_buckets']}: use >= 0 (0: no trigram vectors)")
    if v["bigram_buckets"] < 0 or v["bigram_dim"] < 1:
        raise SettingError(
            f"model.bigram_buckets={v['bigram_buckets']}, model.bigram_dim={v['bigram_dim']}: use buckets >= 0 "
            "(0: no bigram vectors) and dim >= 1"
        )
    if v["unmasked_len"] < 0:
        raise SettingError(f"model.unmasked_len={v['unmasked_len']}: use 0 (padding never read) or a length, e.g. 200")


def ngram_table(order: int, buckets: int, dim: int, pad_id: int, init: str) -> HashedNgrams | None:
    """A hashed n-gram table of `dim`-wide vectors (Keras' Embedding init under `init=keras*`), or None
    for 0 buckets."""
    if not buckets:
        return None
    table = HashedNgrams(buckets, dim, pad_id, order=order)
    if init.startswith("keras"):
        nn.init.uniform_(table.table.weight, -0.05, 0.05)
    return table
