"""``moe``: a token-choice top-k mixture of SwiGLU experts with Switch/GShard load balancing and the router z-loss."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from ....registry import CHANNEL_MIXERS
from ...base import require
from ..base import ChannelMixer
from ..glu import SwiGLU
from ..mlp import default_swiglu_width
from .dispatch import Slots, expert_capacity, grouped_swiglu, top_k_slots, within_capacity
from .router import Router, Routing, RoutingStats, balance_loss, z_loss


def default_expert_width(d_model: int, top_k: int) -> int:
    """``default_swiglu_width(d_model) // top_k`` rounded up to a multiple of 8: top_k such experts hold about the
    parameters of one dense SwiGLU (d_model 256, top-2: 344 = 688 / 2)."""
    return max(8, -(-(default_swiglu_width(d_model) // top_k) // 8) * 8)


def expert_width(d_model: int, d_ff: int | None, default: int) -> int:
    """``d_ff`` checked (an integer >= 1), or ``default`` where it is None."""
    require(d_ff is None or (isinstance(d_ff, int) and d_ff >= 1),
            f"d_ff={d_ff!r} (each expert's width) must be an integer >= 1, or None for the default")
    return d_ff or default


class SwiGLUExperts(nn.Module):
    """E SwiGLU experts of width f stacked: ``w1, w3 [E, f, d_model]``, ``w2 [E, d_model, f]`` (expert e is
    ``SwiGLU`` with ``w1.weight = w1[e]`` and so on), initialised as ``nn.Linear`` initialises each.
    ``forward(x [N, d], slots)`` runs the grouped dispatch. Parameters: ``3 * E * d_model * f``."""

    def __init__(self, n_experts: int, d_model: int, d_ff: int):
        super().__init__()
        self.w1 = nn.Parameter(torch.empty(n_experts, d_ff, d_model))
        self.w3 = nn.Parameter(torch.empty(n_experts, d_ff, d_model))
        self.w2 = nn.Parameter(torch.empty(n_experts, d_model, d_ff))
        for w in (self.w1, self.w3, self.w2):
            bound = 1 / math.sqrt(w.shape[-1])   # nn.Linear's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
            nn.init.uniform_(w, -bound, bound)

    def forward(self, x: torch.Tensor, slots: Slots) -> torch.Tensor:
        return grouped_swiglu(x, slots, self.w1, self.w3, self.w2)


@dataclass(kw_only=True)
class MoEConfig:
    """Options of ``moe``. ``capacity_factor`` None drops nothing; otherwise each expert takes at most
    ``ceil(capacity_factor * N * top_k / n_experts)`` slots per training forward."""

    d_model: int
    n_experts: int = 8
    top_k: int = 2
    capacity_factor: float | None = None
    shared_expert: bool = False
    normalize_topk: bool | None = None
    balance_coef: float = 0.01
    z_coef: float = 0.001

    RANGES: ClassVar[dict[str, str]] = {"d_model": "[1, inf)", "n_experts": "[1, inf)", "top_k": "[1, inf)",
                                        "capacity_factor": "(0, inf)", "balance_coef": "[0, inf)",
                                        "z_coef": "[0, inf)"}

    def check(self) -> None:
        if self.normalize_topk is None:   # the default, resolved: renormalise top-k > 1, keep top-1's raw weight
            self.normalize_topk = self.top_k > 1
        require(self.top_k <= self.n_experts,
                f"top_k={self.top_k} must be <= n_experts={self.n_experts} (each token picks top_k distinct experts)")


@CHANNEL_MIXERS.register("moe")
class MoE(ChannelMixer):
    """Token-choice top-k mixture of experts (Shazeer et al. 2017; Switch, Fedus et al. 2021; GShard, Lepikhin et
    al. 2020; ST-MoE's z-loss, Zoph et al. 2022).

    ``x [B, T, d_model] -> y [B, T, d_model]``: router probabilities ``p = softmax(x W_g^T)`` ``[E]`` (float32 or
    wider), the top_k experts of each token with weights ``p_e / sum_top-k p`` (``normalize_topk``; raw ``p_e``
    otherwise; by default renormalised when top_k > 1 and raw for top-1, as Switch, whose router would otherwise
    get no gradient from the task loss: a renormalised single weight is 1), ``y = sum_chosen w_e * SwiGLU_e(x)``
    (+ ``SwiGLU_shared(x)`` with ``shared_expert``). Tokens are grouped per expert (one matrix product per expert,
    ``dispatch.grouped_swiglu``). With a ``capacity_factor``, training forwards drop the slots beyond each
    expert's capacity (first choices before second choices, tokens in order); a token with every slot dropped
    gets 0 (the block's residual passes it on). Eval drops nothing.

    d_ff is each expert's width, by default ``default_expert_width(d_model, top_k)``, so the active experts hold
    about a dense SwiGLU's parameters. ``aux`` in training: ``balance = balance_coef * E * sum_e f_e P_e`` and
    ``z = z_coef * mean(logsumexp(logits)^2)``. ``stats()``: experts_per_token (slots computed per token),
    dropped_fraction, router_entropy (nats), load (fraction of routed slots per expert).

    Parameters: ``d_model * E`` (router) + ``3 * E * d_model * d_ff`` (experts) + ``3 * d_model * d_ff`` with the
    shared expert. Active: the router, the shared expert and top_k experts.
    """

    description = "top-k mixture of SwiGLU experts: grouped dispatch, balancing and z-loss, optional capacity"
    paper = "Shazeer et al. 2017 (arXiv 1701.06538); Fedus et al. 2021 (Switch, arXiv 2101.03961)"
    Config = MoEConfig

    def __init__(self, d_model: int, d_ff: int | None = None, **options: Any):
        super().__init__()
        cfg = self.configure(d_model, options)
        self.config = cfg
        self.d_ff = expert_width(d_model, d_ff, default_expert_width(d_model, cfg.top_k))
        self.router = Router(d_model, cfg.n_experts, cfg.top_k, cfg.normalize_topk)
        self.experts = SwiGLUExperts(cfg.n_experts, d_model, self.d_ff)
        self.shared = SwiGLU(d_model, self.d_ff) if cfg.shared_expert else None
        self.routing_stats = RoutingStats(cfg.n_experts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1])                                              # (N, d)
        return self.mix(flat, self.router(flat)).view_as(x)

    def mix(self, flat: torch.Tensor, routing: Routing) -> torch.Tensor:
        """The experts' output for tokens ``flat [N, d]`` routed by ``routing``; sets ``aux`` and counts stats."""
        cfg = self.config
        slots = top_k_slots(routing)
        keep = torch.ones_like(slots.expert, dtype=torch.bool)
        if self.training and cfg.capacity_factor is not None:
            capacity = expert_capacity(flat.shape[0], cfg.top_k, cfg.n_experts, cfg.capacity_factor)
            keep = within_capacity(slots.expert, cfg.n_experts, capacity)
            slots = slots.select(keep)
        y = self.experts(flat, slots)
        if self.shared is not None:
            y = y + self.shared(flat)
        self.aux = {"balance": cfg.balance_coef * balance_loss(routing.probs, routing.experts),
                    "z": cfg.z_coef * z_loss(routing.logits)} if self.training else {}
        self.routing_stats.add(keep.sum(), (~keep).sum(), routing.experts, routing.probs)
        return y

    def stats(self) -> dict[str, Any]:
        return self.routing_stats.as_dict()

    def reset_stats(self) -> None:
        self.routing_stats.reset()

    def active_params(self) -> int:
        d, f, cfg = self.config.d_model, self.d_ff, self.config
        return d * cfg.n_experts + 3 * d * f * (cfg.top_k + cfg.shared_expert)

    def expected_num_params(self) -> int:
        d, f, cfg = self.config.d_model, self.d_ff, self.config
        return d * cfg.n_experts + 3 * d * f * (cfg.n_experts + cfg.shared_expert)
