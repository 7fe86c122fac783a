"""Word-level LSTM language models: `LanguageModelNet` (embedding -> AWD-LSTM -> tied output layer) and
`LanguageModel`, its LightningModule (`python -m seqsent.pretrain`).

The regularizers are AWD-LSTM's (Merity et al. 2018): embedding dropout over whole vocabulary rows, locked
dropout on the embedding output, between the layers and on the last layer's output, weight dropout on every
recurrent matrix (`seqsent.models.awd_lstm`), and the activation regularizers AR (`ar_alpha`: the size of the
dropped last-layer outputs) and TAR (`tar_beta`: their change from step to step, before dropout), training
only. The output layer is a full softmax whose weight is the embedding's (`tie_weights`), or with
`adaptive_cutoffs` an `nn.AdaptiveLogSoftmaxWithLoss` whose head cluster's word rows (the shortlist, the
`adaptive_cutoffs[0]` most frequent words) are the embedding's first rows when tied; its tail clusters keep
their own (smaller) projections.

Batches are `{"inputs": (B, T), "targets": (B, T)}` of B token streams, each continuing the same row of the
batch before (truncated backpropagation through time). The hidden state is carried from window to window,
detached, and starts from zeros at each epoch's first training batch and each validation's first batch; a
window with fewer rows than the carried state continues its first rows. A checkpoint saved mid-epoch holds
the carried state, so a resumed run continues it. Checkpoints carry the vocabulary (`seqsent_preprocessing`)
and `seqsent_lm_format`, and load with `weights_only=True`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torchmetrics import MeanMetric

from seqsent.errors import SeqsentError, SettingError, check_types
from seqsent.models.awd_lstm import AWDLSTM, State
from seqsent.models.dropout import LockedDropout
from seqsent.models.training import OPTIMIZERS, PREPROCESSING_KEY, SCHEDULERS, TrainedModule

LM_FORMAT_KEY, LM_FORMAT = "seqsent_lm_format", 1
STATE_KEY = "seqsent_lm_state"  # the carried training state, in checkpoints saved mid-epoch
DIRECTIONS = ("forward", "backward")
DIV_VALUE = 4  # an adaptive softmax's tail cluster i projects to embed_dim // DIV_VALUE ** i units


class TiedHead(nn.Module):
    """An adaptive softmax's head cluster whose word rows are the first `shortlist` rows of a (tied)
    embedding weight; the cluster rows and the bias are its own."""

    def __init__(self, tied: nn.Parameter, shortlist: int, clusters: int):
        super().__init__()
        self.tied, self.shortlist = tied, shortlist
        self.clusters = nn.Parameter(torch.empty(clusters, tied.size(1)).uniform_(-0.1, 0.1))
        self.bias = nn.Parameter(torch.zeros(shortlist + clusters))

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, torch.cat([self.tied[: self.shortlist], self.clusters]), self.bias)


class LanguageModelNet(nn.Module):
    """Next-token log-likelihood of token windows: `net(inputs (B, T), targets (B, T), hidden)`.

    Args:
        vocab_size: rows of the embedding (the vocabulary, specials included).
        embed_dim: size of a word vector, and of the last LSTM layer (so the output layer can be tied).
        hidden_size, num_layers: the AWD-LSTM's other layers (`AWDLSTM`).
        embed_dropout: drop whole vocabulary rows of the embedding (AWD's dropoute), in training.
        input_dropout: locked dropout on the embedding output.
        hidden_dropout: locked dropout between the LSTM layers.
        weight_dropout: DropConnect on each layer's recurrent matrix.
        output_dropout: locked dropout on the last layer's output.
        tie_weights: the output layer's word rows are the embedding (Inan et al. 2017, Press & Wolf 2017).
        adaptive_cutoffs: empty: a full softmax; else the cluster boundaries of an adaptive softmax (Grave et
            al. 2017), increasing, below `vocab_size` (ids are frequency-ranked by the vocabulary).
        pad_id: the padding id (its embedding row starts at zero; a token stream holds none).
    """

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int = 400,
        hidden_size: int = 1150,
        num_layers: int = 3,
        embed_dropout: float = 0.1,
        input_dropout: float = 0.65,
        hidden_dropout: float = 0.3,
        weight_dropout: float = 0.5,
        output_dropout: float = 0.4,
        tie_weights: bool = True,
        adaptive_cutoffs: Sequence[int] = (),
        pad_id: int = 0,
    ):
        super().__init__()
        check_settings(locals())
        self.embed_dropout = embed_dropout
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)  # AWD-LSTM's
        with torch.no_grad():
            self.embedding.weight[pad_id].zero_()
        self.input_dropout = LockedDropout(input_dropout, dim=0)  # on time-major vectors
        self.encoder = AWDLSTM(
            embed_dim, hidden_size, num_layers, output_size=embed_dim, weight_dropout=weight_dropout,
            hidden_dropout=hidden_dropout,
        )  # fmt: skip
        self.output_dropout = LockedDropout(output_dropout, dim=1)
        self.decoder = self._decoder(vocab_size, embed_dim, tie_weights, list(adaptive_cutoffs))

    def _decoder(self, vocab_size: int, embed_dim: int, tie: bool, cutoffs: list[int]) -> nn.Module:
        if not cutoffs:
            decoder = nn.Linear(embed_dim, vocab_size)
            if tie:
                decoder.weight = self.embedding.weight
            return decoder
        decoder = nn.AdaptiveLogSoftmaxWithLoss(embed_dim, vocab_size, cutoffs, div_value=DIV_VALUE, head_bias=True)
        if tie:
            decoder.head = TiedHead(self.embedding.weight, decoder.shortlist_size, decoder.n_clusters)
        return decoder

    def embed(self, inputs: Tensor) -> Tensor:
        """Token ids (B, T) -> word vectors (B, T, E), a batch-first view of time-major ones, with embedding
        dropout (whole vocabulary rows: every occurrence of a dropped word is zero) and input dropout."""
        steps = inputs.t()
        x = self.embedding(steps)
        if self.training and self.embed_dropout > 0:
            keep = torch.rand(self.embedding.num_embeddings, device=x.device) >= self.embed_dropout
            x = x * (keep.to(x.dtype) / (1 - self.embed_dropout))[steps].unsqueeze(-1)
        return self.input_dropout(x).transpose(0, 1)

    def features(self, inputs: Tensor, hidden: list[State] | None = None) -> tuple[Tensor, Tensor, list[State]]:
        """The last layer's outputs (B, T, E) before and after output dropout, and each layer's final state."""
        outputs, finals = self.encoder.run(self.embed(inputs), hidden)
        return outputs[-1], self.output_dropout(outputs[-1]), finals

    def nll(self, features: Tensor, targets: Tensor) -> Tensor:
        """Mean negative log-likelihood of `targets` (B, T) given the output features (B, T, E)."""
        flat, wanted = features.reshape(-1, features.size(-1)), targets.reshape(-1)
        if isinstance(self.decoder, nn.AdaptiveLogSoftmaxWithLoss):
            return self.decoder(flat, wanted).loss
        return F.cross_entropy(self.decoder(flat), wanted)

    def forward(self, inputs: Tensor, targets: Tensor, hidden: list[State] | None = None) -> tuple[Tensor, list[State]]:
        """Mean NLL of the window and each layer's final state (not detached: the caller detaches it)."""
        _, dropped, finals = self.features(inputs, hidden)
        return self.nll(dropped, targets), finals


def check_settings(values: dict[str, Any]) -> None:
    """A one-line `SettingError` (keys as `lm.<name>`) for the first network setting out of range."""
    v = values
    if v["vocab_size"] < 3 or v["embed_dim"] < 1:
        raise SettingError(f"lm.vocab_size={v['vocab_size']}, lm.embed_dim={v['embed_dim']}: use >= 3 and >= 1")
    if v["hidden_size"] < 1 or v["num_layers"] < 1:
        raise SettingError(f"lm.hidden_size={v['hidden_size']}, lm.num_layers={v['num_layers']}: use >= 1")
    for name in ("embed_dropout", "input_dropout", "hidden_dropout", "weight_dropout", "output_dropout"):
        if not 0.0 <= v[name] < 1.0:
            raise SettingError(f"lm.{name}={v[name]}: use a probability in [0, 1)")
    cutoffs = list(v["adaptive_cutoffs"])
    if (
        any(not isinstance(c, int) or isinstance(c, bool) for c in cutoffs)
        or cutoffs != sorted(set(cutoffs))
        or (cutoffs and not 0 < cutoffs[0] <= cutoffs[-1] < v["vocab_size"])
    ):
        raise SettingError(
            f"lm.adaptive_cutoffs={cutoffs}: give increasing whole numbers between 0 and lm.vocab_size "
            f"({v['vocab_size']}), e.g. [2000, 10000], or [] for a full softmax"
        )
    if v["embed_dim"] // DIV_VALUE ** len(cutoffs) < 1:
        raise SettingError(
            f"lm.adaptive_cutoffs={cutoffs} with lm.embed_dim={v['embed_dim']}: the last cluster's projection would "
            f"have no units (each cluster's is {DIV_VALUE} times narrower): use fewer cutoffs or a wider embedding"
        )
    if not 0 <= v["pad_id"] < v["vocab_size"]:
        raise SettingError(f"lm.pad_id={v['pad_id']}: use an id below lm.vocab_size")


def fit_state(state: list[State] | None, rows: int, device: torch.device) -> list[State] | None:
    """The carried state for a window of `rows` streams: its first `rows` rows (None when there is none, or
    fewer rows than the window has), on `device`."""
    if state is None or state[0][0].size(1) < rows:
        return None
    return [(h[:, :rows].to(device), c[:, :rows].to(device)) for h, c in state]


def detached(state: list[State]) -> list[State]:
    return [(h.detach(), c.detach()) for h, c in state]


class LanguageModel(TrainedModule):
    """`LanguageModelNet` with its training: AR/TAR, the carried state, perplexity, the optimizer.

    The network's arguments as `LanguageModelNet`'s; `direction` ("forward" or "backward": the data reads each
    document reversed) is recorded for fine-tuning. Optimization as `SequenceClassifier`'s (`TrainedModule`):
    `optimizer` adam|adamw, `lr`, `weight_decay`, `scheduler` (none|cosine|onecycle|slanted, stepped every batch),
    `warmup_fraction`, and per layer group rates (`lr_decay`, `layer_groups`).
    Logs `train/loss` and `train/ppl` (the epoch's NLL per token without AR/TAR, and its exp), `val/loss`,
    `val/ppl`.
    """

    def __init__(
        self,
        vocab_size: int = 30_000,
        embed_dim: int = 400,
        hidden_size: int = 1150,
        num_layers: int = 3,
        embed_dropout: float = 0.1,
        input_dropout: float = 0.65,
        hidden_dropout: float = 0.3,
        weight_dropout: float = 0.5,
        output_dropout: float = 0.4,
        tie_weights: bool = True,
        adaptive_cutoffs: Sequence[int] = (),
        pad_id: int = 0,
        direction: str = "forward",
        ar_alpha: float = 2.0,
        tar_beta: float = 1.0,
        optimizer: str = "adamw",
        lr: float = 3e-3,
        weight_decay: float = 0.01,
        scheduler: str = "onecycle",
        warmup_fraction: float = 0.0,
        lr_decay: float = 1.0,
        slanted_ratio: float = 32.0,
    ):
        check_types(LanguageModel.__init__, locals(), "lm.")
        super().__init__()
        adaptive_cutoffs = list(adaptive_cutoffs)  # a plain list (Hydra passes a ListConfig): weights_only loading
        check_training(locals())
        self.save_hyperparameters()
        self.net = LanguageModelNet(
            vocab_size, embed_dim, hidden_size, num_layers, embed_dropout, input_dropout, hidden_dropout,
            weight_dropout, output_dropout, tie_weights, adaptive_cutoffs, pad_id,
        )  # fmt: skip
        self.train_loss, self.val_loss = MeanMetric(nan_strategy="disable"), MeanMetric()
        self.tokens_trained = 0  # in this process (throughput)
        self._train_state: list[State] | None = None
        self._val_state: list[State] | None = None

    def forward(self, inputs: Tensor, targets: Tensor, hidden: list[State] | None = None) -> tuple[Tensor, list[State]]:
        return self.net(inputs, targets, hidden)

    def layer_groups(self) -> list[tuple[str, list[nn.Parameter]]]:
        """Parameters by layer group, top first: `decoder` (with the embedding when tied), the LSTM layers top
        to bottom (`encoder<N>` .. `encoder1`), then `embedding` (when not tied)."""
        layers = self.net.encoder.layer_groups()
        named = [("decoder", self.net.decoder)] + [(f"encoder{i + 1}", layers[i]) for i in reversed(range(len(layers)))]
        groups, seen = [], set()
        for name, module in named + [("embedding", self.net.embedding)]:
            params = [p for p in module.parameters() if id(p) not in seen]
            seen.update(map(id, params))
            groups.append((name, params))
        return [(name, params) for name, params in groups if params]

    def _window(
        self, batch: dict[str, Tensor], state: list[State] | None
    ) -> tuple[Tensor, Tensor, Tensor, list[State]]:
        """(NLL, raw and dropped last-layer outputs, final state) of one window from the carried `state`."""
        inputs = batch["inputs"]
        raw, dropped, finals = self.net.features(inputs, fit_state(state, inputs.size(0), inputs.device))
        return self.net.nll(dropped, batch["targets"]), raw, dropped, detached(finals)

    def training_loss(self, batch: dict[str, Tensor], state: list[State] | None) -> tuple[Tensor, Tensor, list[State]]:
        """One training window from the carried `state`: the loss (NLL, AR and TAR), the NLL, the final state."""
        nll, raw, dropped, finals = self._window(batch, state)
        loss = nll
        if self.hparams.ar_alpha:
            loss = loss + self.hparams.ar_alpha * dropped.pow(2).mean()
        if self.hparams.tar_beta and raw.size(1) > 1:
            loss = loss + self.hparams.tar_beta * (raw[:, 1:] - raw[:, :-1]).pow(2).mean()
        return loss, nll, finals

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        loss, nll, self._train_state = self.training_loss(batch, None if batch_idx == 0 else self._train_state)
        self._note_nonfinite(0, loss.detach())
        tokens = batch["targets"].numel()
        self.tokens_trained += tokens
        self.train_loss.update(nll.detach(), weight=tokens)
        self.log("train/loss_step", nll.detach(), on_step=True, on_epoch=False, prog_bar=True)
        self.log("train/loss", self.train_loss, on_step=False, on_epoch=True)
        return loss

    def on_train_epoch_end(self) -> None:
        self.log("train/ppl", perplexity(self.train_loss.compute()))

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        nll, _, _, self._val_state = self._window(batch, None if batch_idx == 0 else self._val_state)
        self.val_loss.update(nll, weight=batch["targets"].numel())
        self.log("val/loss", self.val_loss, on_step=False, on_epoch=True, prog_bar=True)

    def on_validation_epoch_end(self) -> None:
        self.log("val/ppl", perplexity(self.val_loss.compute()), prog_bar=True, sync_dist=True)

    # -- checkpoints carry the vocabulary and the carried state ---------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._save_preprocessing(checkpoint)
        if self._train_state is not None:
            checkpoint[STATE_KEY] = [[h.cpu(), c.cpu()] for h, c in self._train_state]
        checkpoint[LM_FORMAT_KEY] = LM_FORMAT

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        check_lm_format(checkpoint, "the checkpoint")
        self.preprocessing = checkpoint.get(PREPROCESSING_KEY)
        saved = checkpoint.get(STATE_KEY)
        self._train_state = [(h, c) for h, c in saved] if saved else None


def perplexity(nll: Tensor) -> Tensor:
    """exp of a mean NLL per token, capped where exp overflows float32 (an untrained model's first epochs)."""
    return torch.exp(nll.clamp(max=math.log(torch.finfo(torch.float32).max) - 1))


def check_training(values: dict[str, Any]) -> None:
    """A one-line `SettingError` for the first training setting out of range."""
    v = values
    if v["lr"] <= 0:
        raise SettingError(f"lm.lr={v['lr']}: the learning rate must be positive, e.g. 3e-3")
    if v["weight_decay"] < 0 or v["ar_alpha"] < 0 or v["tar_beta"] < 0:
        raise SettingError(
            f"lm.weight_decay={v['weight_decay']}, lm.ar_alpha={v['ar_alpha']}, lm.tar_beta={v['tar_beta']}: use >= 0"
        )
    if not 0 <= v["warmup_fraction"] < 1:
        raise SettingError(f"lm.warmup_fraction={v['warmup_fraction']}: use a fraction in [0, 1), e.g. 0.1")
    if v["lr_decay"] < 1 or v["slanted_ratio"] < 1:
        raise SettingError(f"lm.lr_decay={v['lr_decay']}, lm.slanted_ratio={v['slanted_ratio']}: use >= 1")
    for name, allowed in (("optimizer", OPTIMIZERS), ("scheduler", SCHEDULERS), ("direction", DIRECTIONS)):
        if v[name] not in allowed:
            raise SettingError(f"lm.{name}={v[name]!r}: use one of {allowed}")


def check_lm_format(checkpoint: dict[str, Any], path: object) -> None:
    """A one-line `SeqsentError` for a checkpoint that is not a language model of this seqsent's layout."""
    found = checkpoint.get(LM_FORMAT_KEY)
    if found == LM_FORMAT:
        return
    if found is None:
        raise SeqsentError(f"{path} is not a language model checkpoint: pass one written by python -m seqsent.pretrain")
    raise SeqsentError(
        f"{path} has language model format {found!r}, not {LM_FORMAT}: load it with the seqsent that wrote it"
    )
