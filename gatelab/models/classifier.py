"""SequenceClassifier: embedding -> blocks (causal or bidirectional) -> pooling -> MLP head, the model of the Long
Range Arena tasks (Tay et al. 2021, arXiv 2011.04006), with its two-tower form for pair tasks."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ConfigError, check_ranges
from ..tasks.classification import PAD
from .config import ModelConfig
from .stack import BlockStack, TaskOutput


@dataclass(kw_only=True)
class ClassifierConfig:
    """The classification head. ``pooling``: ``mean`` over the real (unpadded) positions, ``last`` real position
    (causal backbones only: a bidirectional one has no last position that has read everything), or ``cls``: a
    learned token whose output is the summary, prepended for a bidirectional backbone (as LRA and BERT) and appended
    after the last real token for a causal one (the only place a causal token sees the whole input).
    ``hidden``: the width of the MLP head's hidden layer (0: 2 d_model). LRA's models pool (mean or CLS) and
    classify with a two-layer MLP; its pair task (retrieval) feeds ``[x1, x2, x1 * x2, x1 - x2]`` to it."""

    pooling: Literal["mean", "last", "cls"] = "mean"
    hidden: int = 0

    RANGES: ClassVar[dict[str, str]] = {"hidden": "[0, inf)"}


def check_pooling(head: ClassifierConfig, model: ModelConfig) -> None:
    """A ConfigError for a pooling the backbone cannot support."""
    if head.pooling == "last" and model.bidirectional:
        raise ConfigError("classifier.pooling=last with model.bidirectional=true: every position of a bidirectional "
                          "backbone reads the whole sequence, so no position is the last to; use mean or cls")


class SequenceClassifier(BlockStack):
    """Classify token sequences ``[B, T]`` (right-padded with 0), or pairs ``[B, 2, T]`` with one shared encoder
    (two towers).

    ``forward(inputs, labels=None)`` returns class logits ``[B, num_classes]`` and the mean cross-entropy. The
    backbone is a ``BlockStack`` of ``model`` (any mixer schedule, causal or ``model.bidirectional``); the head is
    ``Linear(f, hidden) -> GELU -> Linear(hidden, num_classes)`` with f = d_model (or 4 d_model for pairs).
    Parameters: embedding ``vocab * d`` + blocks + final norm + head ``f * hidden + hidden + hidden * classes +
    classes`` (+ ``d`` for the CLS token).
    """

    def __init__(self, config: ModelConfig, head: ClassifierConfig, num_classes: int, pairs: bool = False):
        super().__init__()
        check_ranges(head, "classifier")
        check_pooling(head, config)
        if num_classes < 2:
            raise ConfigError(f"a classifier needs at least 2 classes; got {num_classes}")
        self._check_config(config)
        self.head_config, self.pairs = head, pairs
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.embed_dropout = nn.Dropout(config.dropout)
        self._build_stack()
        nn.init.normal_(self.embed.weight, std=config.d_model**-0.5)
        self.cls = nn.Parameter(torch.randn(config.d_model) * config.d_model**-0.5) if head.pooling == "cls" else None
        features = config.d_model * (4 if pairs else 1)
        hidden = head.hidden or 2 * config.d_model
        self.head = nn.Sequential(nn.Linear(features, hidden), nn.GELU(), nn.Linear(hidden, num_classes))

    def pooled(self, inputs: torch.Tensor) -> torch.Tensor:
        """One summary vector ``[B, d_model]`` per sequence of ``inputs [B, T]``."""
        lengths = (inputs != PAD).sum(1)                                                  # (B,)
        if bool((lengths == 0).any()):
            raise ValueError("a sequence to classify is empty (all padding)")
        return self.summary(self.embed_dropout(self.embed(inputs)), lengths)

    def summary(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The pooled backbone output ``[B, d_model]`` of embedded sequences ``x [B, T, d_model]`` whose first
        ``lengths [B]`` positions are real."""
        B, T, d = x.shape
        rows = torch.arange(B, device=x.device)
        if self.cls is not None:
            if self.config.bidirectional:
                x, lengths, at = torch.cat([self.cls.expand(B, 1, d), x], 1), lengths + 1, torch.zeros_like(lengths)
            else:
                x = torch.cat([x, x.new_zeros(B, 1, d)], 1)                               # (B, T + 1, d)
                x = x.index_put((rows, lengths), self.cls.expand(B, d))                   # after the last real token
                at, lengths = lengths, lengths + 1
        if x.shape[1] > self.config.max_seq_len:
            raise ValueError(f"sequence length {x.shape[1]} exceeds model.max_seq_len={self.config.max_seq_len}")
        h, _ = self.encode(x, lengths=lengths if self.config.bidirectional else None)    # (B, T', d)
        if self.cls is not None:
            return h[rows, at]
        if self.head_config.pooling == "last":
            return h[rows, lengths - 1]
        real = (torch.arange(h.shape[1], device=h.device) < lengths[:, None]).to(h.dtype)  # (B, T)
        return (h * real[..., None]).sum(1) / lengths[:, None].to(h.dtype)

    def forward(self, inputs: torch.Tensor, labels: torch.Tensor | None = None) -> TaskOutput:
        if self.pairs != (inputs.dim() == 3):
            raise ValueError(f"this classifier takes {'pairs [B, 2, T]' if self.pairs else 'sequences [B, T]'}; "
                             f"got inputs of shape {tuple(inputs.shape)}")
        if self.pairs:
            B = inputs.shape[0]
            both = self.pooled(inputs.flatten(0, 1)).view(B, 2, -1)                       # (B, 2, d)
            a, b = both[:, 0], both[:, 1]
            features = torch.cat([a, b, a * b, a - b], -1)                                # (B, 4 d)
        else:
            features = self.pooled(inputs)                                                # (B, d)
        logits = self.head(features)                                                      # (B, classes)
        wide = torch.promote_types(logits.dtype, torch.float32)                           # bf16 -> float32
        loss = None if labels is None else F.cross_entropy(logits.to(wide), labels)
        aux = self.collect_aux()
        return TaskOutput(logits, loss, torch.stack(list(aux.values())).sum() if aux else None, aux)
