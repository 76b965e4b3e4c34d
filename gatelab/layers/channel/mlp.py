"""The GELU MLP, what every dense channel mixer shares (``DenseConfig``, ``DenseMixer``), and SwiGLU's default
width."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ...registry import CHANNEL_MIXERS
from .base import ChannelMixer


def default_swiglu_width(d_model: int) -> int:
    """``8/3 * d_model`` rounded up to a multiple of 8: SwiGLU's usual width at the parameters of a 4x MLP."""
    return -(-(8 * d_model) // 3 // 8) * 8


@dataclass(kw_only=True)
class DenseConfig:
    """Options of a dense channel mixer: the model width and the hidden width ``d_ff`` (None: the layer's
    default). Layers with more options subclass it."""

    d_model: int
    d_ff: int | None = None

    RANGES: ClassVar[dict[str, str]] = {"d_model": "[1, inf)", "d_ff": "[1, inf)"}


class DenseMixer(ChannelMixer):
    """A channel mixer with one hidden width: validates its options (``Config``) and sets ``config``,
    ``d_model`` and ``d_ff``, which is ``default_width(d_model)`` when None. ``d_ff_multiple``: what every d_ff
    of the layer must be a multiple of (parameter matching rounds the width to it)."""

    Config = DenseConfig
    d_ff_multiple: int = 1

    def __init__(self, d_model: int, d_ff: int | None, options: dict):
        super().__init__()
        self.config = self.configure(d_model, {**options, "d_ff": d_ff})
        self.d_model, self.d_ff = d_model, d_ff or self.default_width(d_model)

    @staticmethod
    def default_width(d_model: int) -> int:
        return 4 * d_model


@CHANNEL_MIXERS.register("mlp")
class MLP(DenseMixer):
    """``w2(gelu(w1 x))`` with biases (Vaswani et al. 2017; GELU from Hendrycks & Gimpel 2016).

    x, y ``[B, T, d_model]``; hidden ``[B, T, d_ff]``, d_ff defaulting to ``4 * d_model``.
    Parameters: ``2 * d_model * d_ff + d_ff + d_model``.
    """

    description = "two-layer GELU feed-forward network with biases"
    paper = "Vaswani et al. 2017, arXiv 1706.03762"

    def __init__(self, d_model: int, d_ff: int | None = None, **options):
        super().__init__(d_model, d_ff, options)
        self.w1, self.w2 = nn.Linear(d_model, self.d_ff), nn.Linear(self.d_ff, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.gelu(self.w1(x)))

    def expected_num_params(self) -> int:
        return 2 * self.d_model * self.d_ff + self.d_ff + self.d_model
