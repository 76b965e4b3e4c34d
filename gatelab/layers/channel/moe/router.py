"""The softmax top-k router of a mixture of experts, its auxiliary losses and its routing statistics.

Tokens are flattened: ``x [N, d_model]``, logits and probabilities ``[N, E]``, the chosen experts and their
weights ``[N, k]``. Routers compute in float32 or wider (``router_dtype``), whatever the input's dtype.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def router_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype routers compute in: float32, or the input's dtype where it is wider (float64)."""
    return torch.promote_types(dtype, torch.float32)


@dataclass
class Routing:
    """One routing decision for N tokens: ``logits``, ``probs`` (softmax) ``[N, E]`` in the router dtype, the
    chosen ``experts`` ``[N, k]`` (long, best first) and their combine ``weights`` ``[N, k]``."""

    logits: torch.Tensor
    probs: torch.Tensor
    experts: torch.Tensor
    weights: torch.Tensor


def top_k_routing(logits: torch.Tensor, top_k: int, normalize: bool = True) -> Routing:
    """Softmax over experts, then each token's ``top_k`` most probable experts; their weights are the softmax
    probabilities, renormalised to sum to 1 over the chosen experts when ``normalize`` (Mixtral, GShard top-2),
    left as they are otherwise (Switch's top-1). Ties go to the lower expert index."""
    probs = logits.softmax(dim=-1)                                                     # (N, E)
    weights, experts = probs.topk(top_k, dim=-1)                                      # (N, k)
    if normalize:
        weights = weights / weights.sum(dim=-1, keepdim=True)
    return Routing(logits, probs, experts, weights)


class Router(nn.Module):
    """``logits = x W_g^T`` with ``W_g [E, d_model]`` (no bias), computed in float32 or wider; ``forward(x [N, d])``
    returns the top-k ``Routing``. Parameters: ``d_model * n_experts``."""

    def __init__(self, d_model: int, n_experts: int, top_k: int, normalize_topk: bool = True):
        super().__init__()
        self.proj = nn.Linear(d_model, n_experts, bias=False)
        self.top_k, self.normalize_topk = top_k, normalize_topk

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        dtype = router_dtype(x.dtype)
        return F.linear(x.to(dtype), self.proj.weight.to(dtype))                       # (N, E)

    def forward(self, x: torch.Tensor) -> Routing:
        return top_k_routing(self.logits(x), self.top_k, self.normalize_topk)


def slot_fractions(experts: torch.Tensor, n_experts: int) -> torch.Tensor:
    """``f_e``: the fraction of the ``N * k`` routed slots that went to expert e ``[E]`` (sums to 1)."""
    counts = torch.bincount(experts.flatten(), minlength=n_experts)
    return counts / experts.numel()


def balance_loss(probs: torch.Tensor, experts: torch.Tensor) -> torch.Tensor:
    """The Switch/GShard load-balancing loss ``E * sum_e f_e * P_e``: ``f_e`` the fraction of routed slots (all k
    of every token) that chose expert e, ``P_e`` the mean router probability of e. Uniform routing gives 1, its
    minimum over balanced routings; the gradient reaches the router through ``P`` (``f`` is a count)."""
    n_experts = probs.shape[-1]
    f = slot_fractions(experts, n_experts).to(probs.dtype)                            # (E,)
    return n_experts * (f * probs.mean(dim=0)).sum()


def z_loss(logits: torch.Tensor) -> torch.Tensor:
    """The router z-loss of ST-MoE (Zoph et al. 2022): ``mean_tokens(logsumexp(logits)^2)``."""
    return logits.logsumexp(dim=-1).square().mean()


def entropy(probs: torch.Tensor) -> torch.Tensor:
    """Entropy in nats of each row of ``probs [N, E]`` -> ``[N]`` (0 log 0 = 0)."""
    return -torch.special.xlogy(probs, probs).sum(dim=-1)


class RoutingStats:
    """Routing statistics summed over the forwards since the last reset, as detached float64 tensors (read once by
    ``as_dict``): tokens, expert slots computed, slots dropped by capacity, router entropy and the routed slots per
    expert."""

    def __init__(self, n_experts: int):
        self.n_experts = n_experts
        self.reset()

    def reset(self) -> None:
        self.tokens = 0
        self.sums: torch.Tensor | None = None   # [computed slots, dropped slots, entropy sum, routed per expert...]

    @torch.no_grad()
    def add(self, computed: torch.Tensor, dropped: torch.Tensor, routed_experts: torch.Tensor,
            probs: torch.Tensor) -> None:
        """Count one forward of N tokens: ``computed`` and ``dropped`` slot counts (scalars), the expert of every
        routed slot (any shape) and the router's probabilities ``probs [N, E]``."""
        dtype = torch.float64
        per_expert = torch.bincount(routed_experts.flatten(), minlength=self.n_experts).to(dtype)
        counts = torch.stack([computed.to(dtype), dropped.to(dtype), entropy(probs.to(dtype)).sum()])
        row = torch.cat([counts, per_expert])
        self.sums = row if self.sums is None else self.sums + row
        self.tokens += probs.shape[0]

    def as_dict(self) -> dict[str, Any]:
        """``experts_per_token`` (computed slots per token), ``dropped_fraction`` (of routed slots),
        ``router_entropy`` (mean over tokens, nats) and ``load`` (fraction of routed slots per expert); empty
        before any forward."""
        if self.sums is None or self.tokens == 0:
            return {}
        computed, dropped, ent, *per_expert = self.sums.tolist()
        routed = sum(per_expert)
        return {"experts_per_token": computed / self.tokens,
                "dropped_fraction": dropped / routed if routed else 0.0,
                "router_entropy": ent / self.tokens,
                "load": [c / routed if routed else 0.0 for c in per_expert]}
