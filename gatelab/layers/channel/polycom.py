"""PolyCom channel mixer: a two-layer FFN with a polynomial composition activation, PolyNorm or PolyReLU
(Zhuo et al. 2024, "Polynomial Composition Activations", arXiv 2411.03884; official code BryceZhuo/PolyCom)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ...registry import CHANNEL_MIXERS
from .mlp import DenseConfig, DenseMixer, default_swiglu_width

POLYNORM_EPS = 1e-6


@dataclass(kw_only=True)
class PolyComConfig(DenseConfig):
    """Options of ``polycom``: the activation and the order of its polynomial (the paper's is 3)."""

    activation: Literal["polynorm", "polyrelu"] = "polynorm"
    order: int = 3

    RANGES: ClassVar[dict[str, str]] = {**DenseConfig.RANGES, "order": "[1, inf)"}


def rms_normalize(z: torch.Tensor, eps: float = POLYNORM_EPS) -> torch.Tensor:
    """``z / sqrt(mean(z^2 over the last dim) + eps)``, without a weight. z ``[..., d_ff]``."""
    return z * torch.rsqrt(z.square().mean(-1, keepdim=True) + eps)


def polycom(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, activation: str) -> torch.Tensor:
    """PolyNorm ``sum_j weight[j] * RMSn(h^(r-j)) + bias`` or PolyReLU ``sum_j weight[j] * relu(h)^(r-j) + bias``
    with r = len(weight): ``weight[0]`` multiplies the highest power, as in the official code.
    h ``[..., d_ff]``; weight ``[r]``; bias ``[1]``."""
    if activation == "polyrelu":
        h = F.relu(h)
    order = weight.shape[0]
    powers = [h ** (order - j) for j in range(order)]                    # r x (..., d_ff), highest first
    if activation == "polynorm":
        powers = [rms_normalize(p) for p in powers]
    return sum(w * p for w, p in zip(weight, powers, strict=True)) + bias


@CHANNEL_MIXERS.register("polycom")
class PolyCom(DenseMixer):
    """``fc2(poly(fc1 x))``, no biases in fc1 and fc2 (the official runs pass ``--disable-bias-linear``), with
    ``poly`` PolyNorm (default) or PolyReLU of order r (``polycom`` above). One set of r coefficients, initialised
    to 1/r each, and one bias, initialised to 0, per module, shared by all channels; PolyNorm's RMS normalisation
    runs over the hidden dim with eps 1e-6 and no weight. The polynomial is evaluated in float32 or wider.

    x, y ``[B, T, d_model]``; hidden ``[B, T, d_ff]``. d_ff defaults to 3/2 of SwiGLU's default width (the paper's
    parameter matching: its scripts multiply SwiGLU's intermediate size by 3/2 for every other activation, 5504 ->
    8256 at 1B), so that both layers have ``3 * d_model * default_swiglu_width(d_model)`` weights.
    Parameters: ``2 * d_model * d_ff + order + 1``.
    """

    description = "two-layer FFN with a polynomial composition activation (PolyNorm or PolyReLU)"
    paper = "Zhuo et al. 2024, arXiv 2411.03884"
    Config = PolyComConfig

    def __init__(self, d_model: int, d_ff: int | None = None, **options):
        super().__init__(d_model, d_ff, options)
        cfg = self.config
        self.fc1 = nn.Linear(d_model, self.d_ff, bias=False)
        self.weight = nn.Parameter(torch.full((cfg.order,), 1.0 / cfg.order))
        self.bias = nn.Parameter(torch.zeros(1))
        self.fc2 = nn.Linear(self.d_ff, d_model, bias=False)

    @staticmethod
    def default_width(d_model: int) -> int:
        return default_swiglu_width(d_model) * 3 // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc1(x)                                                       # (B, T, d_ff)
        wide = torch.promote_types(h.dtype, torch.float32)
        y = polycom(h.to(wide), self.weight.to(wide), self.bias.to(wide), self.config.activation)
        return self.fc2(y.to(h.dtype))

    def expected_num_params(self) -> int:
        return 2 * self.d_model * self.d_ff + self.config.order + 1
