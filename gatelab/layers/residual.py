"""Residual connections: how a block's branch output (token mixer or channel mixer) joins the residual stream.

Every connection is ``forward(x, y) -> x'`` with the stream x and the branch output y ``[B, T, d_model]``,
position-wise, registered in ``RESIDUALS``; a block holds one after its token mixer and one after its channel mixer.

- ``add``: ``x + y``, the ordinary residual.
- ``gtrxl_*``: the gating layers of GTrXL (Parisotto et al. 2019, "Stabilizing Transformers for Reinforcement
  Learning", arXiv 1910.06764), in its identity-map reordering (pre-norm blocks, as every gatelab
  block is) and with the ReLU the paper applies to the branch output before the gate (``relu=False`` drops it).
  The GRU gate's bias ``b_g`` (default 2) makes the block start close to the identity map.
- ``ladder``: Ladder-residual (Zhang et al. 2025, arXiv 2501.06589): each module's output joins the stream one
  module later, so a module reads every earlier output except the one just before it (its communication can
  overlap the next module's compute under tensor parallelism). ``delayed = True``: the block holds the pending
  output instead of adding it (see ``Block``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import RESIDUALS
from .base import build_config


class Residual(nn.Module):
    """``forward(x, y) -> x'``; ``delayed`` connections are applied by the block one module late."""

    description: str = ""
    paper: str = ""
    delayed: bool = False

    def expected_num_params(self) -> int:
        return 0


@RESIDUALS.register("add")
class Add(Residual):
    """``x + y``. No parameters."""

    description = "the ordinary residual sum x + y"
    paper = "He et al. 2016, arXiv 1512.03385"

    def __init__(self, d_model: int):
        super().__init__()

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x + y


@RESIDUALS.register("ladder")
class Ladder(Residual):
    """The ladder wiring: with the stream r and the output of the module before, ``pending``, a module reads
    ``r``, then the block sets ``r <- r + pending`` and ``pending <- y`` (its own output); the model adds the last
    pending output before its final norm. ``forward`` is that addition. No parameters."""

    description = "each module's output joins the stream one module later"
    paper = "Zhang et al. 2025 (Ladder-residual), arXiv 2501.06589"
    delayed = True

    def __init__(self, d_model: int):
        super().__init__()

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x + y


@dataclass(kw_only=True)
class GateConfig:
    """``bias``: b_g, subtracted from the update gate (GRU, output) or added to the carry gate (highway), 2 by
    default (GTrXL's choice for the GRU gate); ``relu``: ReLU on the branch output before the gate, as the paper."""

    d_model: int
    bias: float = 2.0
    relu: bool = True

    RANGES: ClassVar[dict[str, str]] = {"d_model": "[1, inf)", "bias": "[-20, 20]"}


class GTrXLGate(Residual):
    """Shared parts of the GTrXL gates: the config, the branch's ReLU and ``d x d`` bias-free projections."""

    paper = "Parisotto et al. 2019 (GTrXL), arXiv 1910.06764"

    def __init__(self, d_model: int, n_projections: int, **options):
        super().__init__()
        self.config = build_config(GateConfig, type(self).__name__, d_model=d_model, **options)
        self.proj = nn.ModuleList(nn.Linear(d_model, d_model, bias=False) for _ in range(n_projections))

    def branch(self, y: torch.Tensor) -> torch.Tensor:
        return F.relu(y) if self.config.relu else y

    def expected_num_params(self) -> int:
        return len(self.proj) * self.config.d_model**2


@RESIDUALS.register("gtrxl_input")
class InputGate(GTrXLGate):
    """``sigmoid(W_g x) * x + y``. Parameters: ``d_model**2``."""

    description = "GTrXL input gate: sigmoid(W x) * x + y"

    def __init__(self, d_model: int, **options):
        super().__init__(d_model, 1, **options)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.proj[0](x)) * x + self.branch(y)


@RESIDUALS.register("gtrxl_output")
class OutputGate(GTrXLGate):
    """``x + sigmoid(W_g x - b_g) * y``. Parameters: ``d_model**2``."""

    description = "GTrXL output gate: x + sigmoid(W x - b) * y"

    def __init__(self, d_model: int, **options):
        super().__init__(d_model, 1, **options)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x + torch.sigmoid(self.proj[0](x) - self.config.bias) * self.branch(y)


@RESIDUALS.register("gtrxl_highway")
class HighwayGate(GTrXLGate):
    """``c * x + (1 - c) * y`` with ``c = sigmoid(W_g x + b_g)``. Parameters: ``d_model**2``."""

    description = "GTrXL highway gate: c x + (1 - c) y, c = sigmoid(W x + b)"

    def __init__(self, d_model: int, **options):
        super().__init__(d_model, 1, **options)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        carry = torch.sigmoid(self.proj[0](x) + self.config.bias)
        return carry * x + (1 - carry) * self.branch(y)


@RESIDUALS.register("gtrxl_sigmoid_tanh")
class SigmoidTanhGate(GTrXLGate):
    """``x + sigmoid(W_g y - b) * tanh(U_g y)``. Parameters: ``2 * d_model**2``."""

    description = "GTrXL sigmoid-tanh gate: x + sigmoid(W y - b) * tanh(U y)"

    def __init__(self, d_model: int, **options):
        super().__init__(d_model, 2, **options)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        y = self.branch(y)
        return x + torch.sigmoid(self.proj[0](y) - self.config.bias) * torch.tanh(self.proj[1](y))


@RESIDUALS.register("gtrxl_gru")
class GRUGate(GTrXLGate):
    """The GRU-type gate, GTrXL's best: ``r = sigmoid(W_r y + U_r x)``,
    ``z = sigmoid(W_z y + U_z x - b_g)``, ``h = tanh(W_g y + U_g (r * x))``, ``x' = (1 - z) * x + z * h``. With
    b_g = 2 the update gate starts near sigmoid(-2) = 0.12: the block starts close to the identity map.
    Parameters: ``6 * d_model**2`` (six bias-free projections; b_g is a constant, as in the paper)."""

    description = "GTrXL GRU gate: (1 - z) x + z tanh(W y + U (r x)), update bias -2 (near-identity at init)"

    def __init__(self, d_model: int, **options):
        super().__init__(d_model, 6, **options)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        w_r, u_r, w_z, u_z, w_g, u_g = self.proj
        y = self.branch(y)
        r = torch.sigmoid(w_r(y) + u_r(x))
        z = torch.sigmoid(w_z(y) + u_z(x) - self.config.bias)
        h = torch.tanh(w_g(y) + u_g(r * x))
        return (1 - z) * x + z * h
