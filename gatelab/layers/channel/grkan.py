"""GR-KAN channel mixer: the group-rational KAN layer of the Kolmogorov-Arnold Transformer (Yang & Wang 2024,
arXiv 2409.10594; official code Adamdad/kat @ ecb0eb7 and its rational kernels Adamdad/rational_kat_cu @ 181bae8)."""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import torch
from torch import nn

from ...config import ConfigError
from ...registry import CHANNEL_MIXERS
from .mlp import DenseConfig, DenseMixer

# Initial coefficients (a_0..a_5 of the numerator, b_1..b_4 of the denominator), from rational_kat_cu's
# kat_rational/init.json @ 181bae8, least-squares fits to the named function on 1000 points of [-3, 3].
RATIONAL_INITS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "identity": ((0.0, 1.0, 0.0, 0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 0.0)),
    # init.json's "gelu_old", its "gelu" until 2024-08-29: fitted for this layer's denominator (max |R - GELU|
    # on [-3, 3] is 4.1e-3).
    "gelu": ((-0.0012423594497499122, 0.5080497063245629, 0.41586363182937475, 0.13022718688035761,
              0.024355900098993424, 0.00290283948155535),
             (-0.06675015696494944, 0.17927646217001553, 0.03746682605496631, 1.6561610853276082e-10)),
    "swish": ((3.054879741161051e-07, 0.5000007853744493, 0.24999783422824703, 0.05326628273219478,
               0.005803034571292244, 0.0002751961022402342),
              (-4.111554955950634e-06, 0.10652899335007572, -1.2690007399796238e-06, 0.0005502331264140556)),
    # init.json's "gelu" since 2024-08-29, which the released code loads: fitted for the denominator
    # 1 + |sum_i b_i x^i| of its fitting script, not for the |b_i| |x|^i of its kernels, so under this layer's
    # denominator it is GELU only near 0 (max |R - GELU| is 1.8e-2 on [-1, 1] and 1.46 on [-3, 3]).
    "gelu_as_released": ((-0.00153969, 0.51692871, 0.44075827, 0.0972553, -0.00884418, -0.00378675),
                         (-0.14171056, -0.06481231, -0.0444695, 0.01283776)),
}


@dataclass(kw_only=True)
class GRKANConfig(DenseConfig):
    """Options of ``grkan``: the channel groups of both rational activations, the function the second one fits at
    initialisation, whether the groups share the numerator (the official code) or each has its own (the paper's
    text), and the initialisation of fc1 and fc2."""

    num_groups: int = 8
    act_init: Literal["gelu", "swish", "gelu_as_released"] = "gelu"
    shared_numerator: bool = True
    weight_init: Literal["variance_preserving", "trunc_normal"] = "variance_preserving"

    RANGES: ClassVar[dict[str, str]] = {**DenseConfig.RANGES, "num_groups": "[1, inf)"}

    def check(self) -> None:
        for name, width in (("d_model", self.d_model), ("d_ff", self.d_ff)):
            if width is not None and width % self.num_groups:
                raise ConfigError(f"grkan: num_groups={self.num_groups} must divide {name}={width} (each rational "
                                  f"activation splits its channels into num_groups equal groups)")


def unit_slope_abs(v: torch.Tensor) -> torch.Tensor:
    """``|v|`` with the derivative ``copysign(1, v)``, which is +1 at +0 as in the official CUDA kernels: a
    denominator coefficient initialised to 0 (the identity init) still learns, where ``torch.abs`` has slope 0."""
    return v * torch.ones_like(v).copysign(v).detach()


def group_rational(x: torch.Tensor, numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    """``P(x) / Q(x)`` per channel group, ``P = sum_{i=0..m} a_i x^i``, ``Q = 1 + sum_{i=1..n} |b_i| |x|^i`` (the
    official kernels' "safe" denominator: Q >= 1 by construction, so the ratio never divides by a small number).
    Evaluated in Horner form.

    x ``[..., C]``; numerator ``[G, m + 1]`` or ``[1, m + 1]`` (one row shared by all groups); denominator
    ``[G, n]``. Group g holds channels ``g * C/G .. (g + 1) * C/G - 1``. Returns ``[..., C]``.
    """
    groups = denominator.shape[0]
    z = x.unflatten(-1, (groups, -1))                                     # (..., G, C/G)
    a = numerator.expand(groups, -1).unsqueeze(-1)                        # (G, m + 1, 1)
    b = unit_slope_abs(denominator).unsqueeze(-1)                         # (G, n, 1)
    p = a[:, -1]
    for i in range(a.shape[1] - 2, -1, -1):
        p = p * z + a[:, i]
    z_abs = unit_slope_abs(z)
    q = b[:, -1]
    for i in range(b.shape[1] - 2, -1, -1):
        q = q * z_abs + b[:, i]
    return (p / (q * z_abs + 1)).flatten(-2)                             # (..., C)


@functools.cache
def rational_gain(init: str) -> float:
    """``1 / sqrt(E[R(x)^2])`` for x ~ N(0, 1) and R the rational initialised as ``init`` (Gauss-Hermite quadrature,
    100 nodes): the gain that keeps the variance of a linear layer's output fed by R equal to its input's."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(100)
    x = torch.tensor(nodes, dtype=torch.float64, device="cpu").unsqueeze(-1)
    a, b = (torch.tensor([c], dtype=torch.float64, device="cpu") for c in RATIONAL_INITS[init])
    second_moment = float((group_rational(x, a, b).squeeze(-1) ** 2 * torch.tensor(weights, device="cpu")).sum())
    return math.sqrt(math.sqrt(2 * math.pi) / second_moment)


class GroupRational(nn.Module):
    """A rational activation of order (5, 4) shared within channel groups (``group_rational``), evaluated in
    float32 or wider, initialised to fit ``RATIONAL_INITS[init]``. The numerator ``[1, 6]`` (shared, the official
    code) or ``[num_groups, 6]``; the denominator ``[num_groups, 4]``."""

    def __init__(self, init: str, num_groups: int, shared_numerator: bool):
        super().__init__()
        self.init = init
        a, b = (torch.tensor(c) for c in RATIONAL_INITS[init])
        self.numerator = nn.Parameter(a.repeat(1 if shared_numerator else num_groups, 1))
        self.denominator = nn.Parameter(b.repeat(num_groups, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        wide = torch.promote_types(x.dtype, torch.float32)
        return group_rational(x.to(wide), self.numerator.to(wide), self.denominator.to(wide)).to(x.dtype)


@CHANNEL_MIXERS.register("grkan")
class GRKAN(DenseMixer):
    """``fc2(R2(fc1(R1(x))))``, the KAT MLP: R1 and R2 are group-rational activations (``GroupRational``) with
    ``num_groups`` groups over d_model and d_ff channels; R1 starts as the identity, R2 as ``act_init`` (GELU
    by default; the official tiny model uses swish). fc1 and fc2 have biases (timm's Mlp defaults, as in KAT).

    Initialisation of fc1 and fc2 (biases 0): ``variance_preserving`` (the paper's, and the code's ``kan`` init
    functions before they are overwritten) draws N(0, gain^2 / fan_in) with the gain of the rational that feeds
    the layer (``rational_gain``: 1 for R1's identity, 1.53 for GELU); ``trunc_normal`` is N(0, 0.02^2), what
    the released code ends with (its Kaiming init is overwritten by timm's ``trunc_normal_(std=.02)``). The
    coefficient tensors are 2-D, so weight decay applies to them, as timm's optimiser groups do in KAT. KAT's
    dropout after each activation is left to the model.

    x, y ``[B, T, d_model]``; hidden ``[B, T, d_ff]``, d_ff defaulting to ``4 * d_model`` (KAT's mlp_ratio 4).
    Parameters: ``2 * (n_a + 4 * num_groups) + 2 * d_model * d_ff + d_ff + d_model``, with n_a = 6 (shared
    numerator) or ``6 * num_groups``.
    """

    description = "Kolmogorov-Arnold layer: group-rational activations around a two-layer FFN (GR-KAN)"
    paper = "Yang & Wang 2024, arXiv 2409.10594"
    Config = GRKANConfig

    def __init__(self, d_model: int, d_ff: int | None = None, **options):
        super().__init__(d_model, d_ff, options)
        cfg = self.config
        self.d_ff_multiple = cfg.num_groups
        self.act1 = GroupRational("identity", cfg.num_groups, cfg.shared_numerator)
        self.fc1 = nn.Linear(d_model, self.d_ff)
        self.act2 = GroupRational(cfg.act_init, cfg.num_groups, cfg.shared_numerator)
        self.fc2 = nn.Linear(self.d_ff, d_model)
        for act, fc in ((self.act1, self.fc1), (self.act2, self.fc2)):
            if cfg.weight_init == "trunc_normal":
                nn.init.trunc_normal_(fc.weight, std=0.02)
            else:
                nn.init.normal_(fc.weight, std=rational_gain(act.init) / math.sqrt(fc.in_features))
            nn.init.zeros_(fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act2(self.fc1(self.act1(x))))

    def expected_num_params(self) -> int:
        groups = self.config.num_groups
        numerator = 6 if self.config.shared_numerator else 6 * groups
        return 2 * (numerator + 4 * groups) + 2 * self.d_model * self.d_ff + self.d_ff + self.d_model
