"""Channel mixers: the GELU MLP and SwiGLU."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...registry import CHANNEL_MIXERS
from .base import ChannelMixer


def default_swiglu_width(d_model: int) -> int:
    """``8/3 * d_model`` rounded up to a multiple of 8: SwiGLU's usual width at the parameters of a 4x MLP."""
    return -(-(8 * d_model) // 3 // 8) * 8


@CHANNEL_MIXERS.register("mlp")
class MLP(ChannelMixer):
    """``w2(gelu(w1 x))`` (Vaswani et al. 2017). d_ff defaults to ``4 * d_model``.
    Parameters: ``2 * d_model * d_ff + d_ff + d_model`` (with biases)."""

    def __init__(self, d_model: int, d_ff: int | None = None):
        super().__init__()
        d_ff = self.d_ff = d_ff or 4 * d_model
        self.w1, self.w2 = nn.Linear(d_model, d_ff), nn.Linear(d_ff, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.gelu(self.w1(x)))


@CHANNEL_MIXERS.register("swiglu")
class SwiGLU(ChannelMixer):
    """``w2(silu(w1 x) * w3 x)`` (Shazeer 2020, arXiv 2002.05202). d_ff defaults to ``default_swiglu_width``.
    Parameters: ``3 * d_model * d_ff`` (no biases)."""

    def __init__(self, d_model: int, d_ff: int | None = None):
        super().__init__()
        d_ff = self.d_ff = d_ff or default_swiglu_width(d_model)
        self.w1 = nn.Linear(d_model, d_ff, bias=False)
        self.w3 = nn.Linear(d_model, d_ff, bias=False)
        self.w2 = nn.Linear(d_ff, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))
