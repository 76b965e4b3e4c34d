"""Low-rank factorised FFN: the low-rank feed-forward layer of the Low-Rank Transformer (Winata et al. 2020,
"Lightweight and Efficient End-to-End Speech Recognition Using Low-Rank Transformer", arXiv 1910.13923), collected
in Greenformers (Cahyawijaya 2021, arXiv 2108.10808; official code SamuelCahyawijaya/greenformer, ``LED``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ...registry import CHANNEL_MIXERS
from ..base import require
from .mlp import DenseConfig, DenseMixer


@dataclass(kw_only=True)
class LowRankConfig(DenseConfig):
    """Options of ``lowrank``: the rank of each factorised weight (None: ``max(1, d_model // 4)``), the activation
    (the Low-Rank Transformer's FFN uses ReLU) and whether the layers keep their biases."""

    rank: int | None = None
    activation: Literal["relu", "gelu"] = "relu"
    bias: bool = True

    RANGES: ClassVar[dict[str, str]] = {**DenseConfig.RANGES, "rank": "[1, inf)"}


class LowRankLinear(nn.Module):
    """A linear map ``in -> out`` whose weight is factorised through rank r: ``v(u(x))`` with ``u`` ``[r, in]``
    without bias and ``v`` ``[out, r]`` with the layer's bias (Greenformer's linear encoder-decoder, ``LED``).
    Parameters: ``r * (in + out)`` (+ ``out`` with the bias)."""

    def __init__(self, in_features: int, out_features: int, rank: int, bias: bool):
        super().__init__()
        self.u = nn.Linear(in_features, rank, bias=False)
        self.v = nn.Linear(rank, out_features, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.v(self.u(x))


@CHANNEL_MIXERS.register("lowrank")
class LowRankFFN(DenseMixer):
    """``w2(act(w1 x))`` with each weight factorised as ``W = V U`` of rank r (``LowRankLinear``):
    ``w1``: d_model -> r -> d_ff, ``w2``: d_ff -> r -> d_model. Biases (on the second factor of each, as
    Greenformer's ``LED`` keeps the factorised layer's bias) and ReLU are those of the Transformer FFN that the
    Low-Rank Transformer factorises. Both factors keep PyTorch's default initialisation (Greenformer's
    factorisation-by-design, solver "random").

    x, y ``[B, T, d_model]``; hidden ``[B, T, d_ff]``, d_ff defaulting to ``4 * d_model``. The rank defaults to
    ``max(1, d_model // 4)``, this library's choice, of the order of the paper's (its ASR models, d_model 512 and
    d_ff 2048, use ranks of 100 and below; their training code is not public). A rank must stay below
    ``d_model * d_ff / (d_model + d_ff)``, where a factorised weight stops being smaller than the dense one
    (Greenformer skips such layers; here it is an error).
    Parameters: ``2 * rank * (d_model + d_ff)`` (+ ``d_ff + d_model`` with biases).
    """

    description = "two-layer FFN with both weights factorised through a low rank (LRT / Greenformers)"
    paper = "Winata et al. 2020, arXiv 1910.13923"
    Config = LowRankConfig

    def __init__(self, d_model: int, d_ff: int | None = None, **options):
        super().__init__(d_model, d_ff, options)
        cfg = self.config
        self.rank = cfg.rank or max(1, d_model // 4)
        limit = d_model * self.d_ff / (d_model + self.d_ff)
        require(self.rank < limit, f"lowrank: rank={self.rank} must be < d_model*d_ff/(d_model+d_ff) = {limit:g} "
                                   f"(d_model={d_model}, d_ff={self.d_ff}); at or above it the factorised weights "
                                   "have as many parameters as dense ones")
        self.act = F.relu if cfg.activation == "relu" else F.gelu
        self.w1 = LowRankLinear(d_model, self.d_ff, self.rank, cfg.bias)
        self.w2 = LowRankLinear(self.d_ff, d_model, self.rank, cfg.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(self.act(self.w1(x)))

    def expected_num_params(self) -> int:
        biases = self.d_ff + self.d_model if self.config.bias else 0
        return 2 * self.rank * (self.d_model + self.d_ff) + biases
