"""Mixture of Hidden Dimensions (``mohd``): an FFN that reads and writes only some sub-dimension groups of each
token's hidden vector, shared groups always and routed groups chosen per token (Chen et al. 2025, arXiv 2412.05644)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ....registry import CHANNEL_MIXERS
from ...base import require
from ..base import ChannelMixer
from ..mlp import default_swiglu_width


@dataclass(kw_only=True)
class MoHDConfig:
    """Options of ``mohd``. Defaults (ours; the paper's could not be read): 8 groups, 3 shared and the top 1 of the
    5 routed active, so half the hidden dimensions, three quarters of them shared."""

    d_model: int
    d_ff: int
    n_groups: int = 8
    n_shared: int = 3
    top_k: int = 1
    fusion: bool = True
    balance_coef: float = 0.01

    RANGES: ClassVar[dict[str, str]] = {"d_model": "[1, inf)", "d_ff": "[1, inf)", "n_groups": "[1, inf)",
                                        "n_shared": "[0, inf)", "top_k": "[1, inf)", "balance_coef": "[0, inf)"}

    def check(self) -> None:
        require(self.d_model % self.n_groups == 0,
                f"MoHD: n_groups={self.n_groups} must divide d_model={self.d_model} (each group holds "
                "d_model / n_groups hidden dimensions); choose a divisor of d_model")
        require(self.n_shared + self.top_k <= self.n_groups,
                f"MoHD: top_k={self.top_k} is more than the {self.n_groups - self.n_shared} routed groups "
                f"(n_groups={self.n_groups} - n_shared={self.n_shared}); top_k must be <= n_groups - n_shared")


@CHANNEL_MIXERS.register("mohd")
class MixtureOfHiddenDimensions(ChannelMixer):
    """Mixture of Hidden Dimensions FFN (Chen et al. 2025, "Mixture of Hidden-Dimensions Transformer", ICML 2025,
    arXiv 2412.05644).

    The token's hidden vector x ``[d_model]`` is split into G groups of ``s = d_model / G`` dimensions. The first
    ``n_shared`` groups are always active; a router (``softmax(x W_r)`` over the ``R = G - n_shared`` routed groups,
    float32 or wider) activates the ``top_k`` most probable routed groups; A is the active set, ``|A| = n_shared +
    top_k``. The SwiGLU FFN it sparsifies (``W1, W3`` ``[d_model, d_ff]``, ``W2`` ``[d_ff, d_model]``, no biases)
    then reads only the active input groups and writes only the active output groups:

        u = (G / |A|) * x_A                                  activation scaling of the active dimensions
        o = (silu(u W1[A, :]) * (u W3[A, :])) W2[:, A]       [|A| * s]
        y_g = w_g o_g for g in A, 0 for the others            w_g = 1 (shared), R * p_g (routed)
        y <- fusion(y)                                        group fusion (``fusion=True``)

    The group fusion mixes each within-group position across the G groups (a G x G matrix per position, ``[s, G, G]``,
    initialised to the identity), so the active groups' outputs also reach the inactive dimensions.
    ``aux["balance"] = balance_coef * R * sum_g f_g P_g`` (Switch-style, over the routed groups: f the fraction of
    routed slots, P the mean probability). With every group active and a uniform router (``w_g = 1``) and the fusion at
    the identity, the layer equals the dense SwiGLU. The layer computes the masked dense form (the same numbers as the
    gathered form, which a kernel would run: ``active_params`` counts what that uses).

    What is from the paper and what is ours: the paper could not be read here beyond its abstract. From it: the
    sparsified unit is the token's hidden dimension (not the FFN's inner width), split into sub-dimension groups,
    shared groups always active, specialised groups routed per token, an activation scaling and a group fusion that
    limit the information lost to sparsity, and the LLaMA (SwiGLU) backbone. Ours: the router (softmax, top-k, the
    gate weight ``R * p_g``, chosen so a uniform router gives 1), the scaling factor ``G / |A|`` (the reading noted
    in our references: active dimensions rescaled by d / d_active), the placement of the gate weight on the output
    groups, the form of the fusion (per position, across groups: one factor of a Monarch-style mixing), the balance
    loss and every default.

    Shapes: x, y ``[B, T, d_model]``. d_ff defaults to SwiGLU's ``8/3 * d_model`` (rounded up to a multiple of 8).
    Parameters: ``3 * d_model * d_ff`` (FFN) + ``d_model * R`` (router, no bias) + ``s * G^2`` (fusion, if on).
    """

    description = "mixture of hidden dimensions: shared + top-k routed groups of the hidden vector feed a sparse FFN"
    paper = "Chen et al. 2025, arXiv 2412.05644"
    Config = MoHDConfig

    def __init__(self, d_model: int, d_ff: int | None = None, **options: Any):
        super().__init__()
        cfg = self.configure(d_model, {**options, "d_ff": d_ff or default_swiglu_width(d_model)})
        self.config, self.size, self.d_ff = cfg, d_model // cfg.n_groups, cfg.d_ff
        self.n_routed = cfg.n_groups - cfg.n_shared
        self.w1 = nn.Linear(d_model, cfg.d_ff, bias=False)
        self.w3 = nn.Linear(d_model, cfg.d_ff, bias=False)
        self.w2 = nn.Linear(cfg.d_ff, d_model, bias=False)
        self.router = nn.Linear(d_model, self.n_routed, bias=False)
        eye = torch.eye(cfg.n_groups).expand(self.size, -1, -1)
        self.fusion = nn.Parameter(eye.clone()) if cfg.fusion else None                 # [s, G, G]
        self.reset_stats()

    def route(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The active groups ``[..., G]`` (bool), their gate weights ``[..., G]`` (0 for inactive groups;
        differentiable) and the routing probabilities ``[..., R]`` (float32 or wider)."""
        dtype = torch.promote_types(x.dtype, torch.float32)
        probs = F.softmax(F.linear(x.to(dtype), self.router.weight.to(dtype)), dim=-1)  # [..., R]
        top = probs.topk(self.config.top_k, dim=-1).indices                             # [..., k]
        routed = torch.zeros_like(probs).scatter(-1, top, self.n_routed * probs.gather(-1, top))
        shared = torch.ones(*probs.shape[:-1], self.config.n_shared, dtype=dtype, device=x.device)
        active = torch.zeros_like(probs, dtype=torch.bool).scatter(-1, top, True)
        active = torch.cat([torch.ones_like(shared, dtype=torch.bool), active], dim=-1)  # [..., G]
        return active, torch.cat([shared, routed], dim=-1), probs

    def mix(self, x: torch.Tensor, active: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """The sparse FFN for a given routing: x ``[..., d_model]``, active ``[..., G]`` (bool), weights ``[..., G]``
        (the gate weight of each active group)."""
        active = active.to(x.dtype)                                                      # [..., G]
        scale = self.config.n_groups / active.sum(-1, keepdim=True)                      # [..., 1]
        u = (x.unflatten(-1, (-1, self.size)) * (scale * active).unsqueeze(-1)).flatten(-2)
        o = self.w2(F.silu(self.w1(u)) * self.w3(u)).unflatten(-1, (-1, self.size))    # [..., G, s]
        y = o * weights.to(x.dtype).unsqueeze(-1)                                        # [..., G, s]
        if self.fusion is not None:
            y = torch.einsum("...gs,sfg->...fs", y, self.fusion)                         # [..., G, s]
        return y.flatten(-2)                                                             # [..., d_model]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        active, weights, probs = self.route(x)
        chosen = active[..., self.config.n_shared:].to(probs.dtype)                      # [B, T, R]
        if self.training and self.config.balance_coef > 0:
            load = chosen.flatten(0, -2).mean(0) / self.config.top_k                     # [R]
            balance = self.n_routed * (load * probs.flatten(0, -2).mean(0)).sum()
            self.aux = {"balance": self.config.balance_coef * balance}
        else:
            self.aux = {}
        counts = chosen.detach().flatten(0, -2).sum(0).double()
        self._slots = counts if self._slots is None else self._slots + counts
        return self.mix(x, active, weights)

    def reset_stats(self) -> None:
        self._slots: torch.Tensor | None = None

    def stats(self) -> dict[str, Any]:
        """``active_fraction`` (active hidden dimensions over d_model; fixed by n_shared and top_k) and ``load``
        (fraction of the routed slots per routed group), over the forwards since the last reset."""
        if self._slots is None:
            return {}
        cfg = self.config
        return {"active_fraction": (cfg.n_shared + cfg.top_k) / cfg.n_groups,
                "load": (self._slots / self._slots.sum()).tolist()}

    def active_params(self) -> int:
        """Parameters one token uses: the FFN rows and columns of its ``|A|`` active groups, the router, and the fusion
        columns that read the active groups."""
        cfg = self.config
        active = (cfg.n_shared + cfg.top_k) * self.size
        fusion = self.size * cfg.n_groups * (cfg.n_shared + cfg.top_k) if cfg.fusion else 0
        return 3 * active * cfg.d_ff + cfg.d_model * self.n_routed + fusion

    def expected_num_params(self) -> int:
        cfg = self.config
        fusion = self.size * cfg.n_groups ** 2 if cfg.fusion else 0
        return 3 * cfg.d_model * cfg.d_ff + cfg.d_model * self.n_routed + fusion
