"""The GLU family of channel mixers (Shazeer 2020, "GLU Variants Improve Transformer", arXiv 2002.05202):
``glu`` (sigmoid), ``bilinear`` (no activation), ``reglu``, ``geglu`` and ``swiglu``."""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ...registry import CHANNEL_MIXERS
from .mlp import DenseMixer, default_swiglu_width


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


class GatedFFN(DenseMixer):
    """``w2(act(w1 x) * w3 x)``, no biases (Shazeer 2020, arXiv 2002.05202, eq. 5-6); each subclass sets ``act``.

    x, y ``[B, T, d_model]``; ``w1 x`` (the gate, through ``act``) and ``w3 x`` (the value) ``[B, T, d_ff]``.
    d_ff defaults to ``default_swiglu_width(d_model)`` (8/3 d_model rounded up to a multiple of 8), which keeps
    the parameters of a 4x MLP as the paper does (its FFN baseline has d_ff 3072, its gated variants 2048: three
    matrices instead of two, at 2/3 the width).
    Parameters: ``3 * d_model * d_ff``.
    """

    paper = "Shazeer 2020, arXiv 2002.05202"
    act: Callable[[torch.Tensor], torch.Tensor]
    default_width = staticmethod(default_swiglu_width)

    def __init__(self, d_model: int, d_ff: int | None = None, **options):
        super().__init__(d_model, d_ff, options)
        self.w1 = nn.Linear(d_model, self.d_ff, bias=False)
        self.w3 = nn.Linear(d_model, self.d_ff, bias=False)
        self.w2 = nn.Linear(self.d_ff, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(self.act(self.w1(x)) * self.w3(x))

    def expected_num_params(self) -> int:
        return 3 * self.d_model * self.d_ff


@CHANNEL_MIXERS.register("glu")
class GLU(GatedFFN):
    """``w2(sigmoid(w1 x) * w3 x)``: the original gated linear unit (Dauphin et al. 2017) as an FFN."""

    description = "gated FFN with a sigmoid gate (GLU)"
    act = staticmethod(torch.sigmoid)


@CHANNEL_MIXERS.register("bilinear")
class Bilinear(GatedFFN):
    """``w2(w1 x * w3 x)``: the gate without a nonlinearity."""

    description = "gated FFN without a gate activation (bilinear)"
    act = staticmethod(_identity)


@CHANNEL_MIXERS.register("reglu")
class ReGLU(GatedFFN):
    """``w2(relu(w1 x) * w3 x)``."""

    description = "gated FFN with a ReLU gate (ReGLU)"
    act = staticmethod(F.relu)


@CHANNEL_MIXERS.register("geglu")
class GEGLU(GatedFFN):
    """``w2(gelu(w1 x) * w3 x)`` with the exact GELU ``x * Phi(x)``, as the paper defines it."""

    description = "gated FFN with a GELU gate (GEGLU)"
    act = staticmethod(F.gelu)


@CHANNEL_MIXERS.register("swiglu")
class SwiGLU(GatedFFN):
    """``w2(silu(w1 x) * w3 x)`` (Swish with beta = 1)."""

    description = "gated FFN with a Swish gate (SwiGLU)"
    act = staticmethod(F.silu)
