"""Grouped dispatch of tokens to SwiGLU experts: the slots (token, expert, weight) sorted by expert once, one
matrix product per expert over all its tokens, the weighted outputs added back per token. Also the capacity rule
that drops slots, and the readable per-slot reference both are tested against.

Shapes: tokens ``x [N, d]``; ``S`` slots; expert weights stacked as ``w1, w3 [E, f, d]`` and ``w2 [E, d, f]``
(``nn.Linear``'s ``[out, in]`` layout), expert e computing ``w2[e] (silu(w1[e] x) * w3[e] x)``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .router import Routing


@dataclass
class Slots:
    """Token-to-expert assignments: ``token``, ``expert`` (long) and combine ``weight`` ``[S]`` each."""

    token: torch.Tensor
    expert: torch.Tensor
    weight: torch.Tensor

    def select(self, keep: torch.Tensor) -> Slots:
        """The slots where the bool mask ``keep [S]`` holds."""
        return Slots(self.token[keep], self.expert[keep], self.weight[keep])


def top_k_slots(routing: Routing) -> Slots:
    """The ``N * k`` slots of a top-k routing in GShard's priority order: every token's first choice (tokens in
    order), then every token's second choice, and so on; capacity keeps the earliest slots of each expert."""
    n, k = routing.experts.shape
    token = torch.arange(n, device=routing.experts.device).repeat(k)                 # (k*N,) slot-major
    return Slots(token, routing.experts.t().flatten(), routing.weights.t().flatten())


def expert_capacity(n_tokens: int, top_k: int, n_experts: int, factor: float) -> int:
    """Slots one expert takes per forward: ``ceil(factor * N * k / E)``."""
    return math.ceil(factor * n_tokens * top_k / n_experts)


def within_capacity(expert: torch.Tensor, n_experts: int, capacity: int) -> torch.Tensor:
    """Bool ``[S]``: whether each slot is among the first ``capacity`` slots (in slot order) of its expert."""
    order = torch.argsort(expert, stable=True)
    counts = torch.bincount(expert, minlength=n_experts)
    starts = torch.cumsum(counts, 0) - counts                                          # (E,) first sorted index
    rank = torch.empty_like(expert)
    rank[order] = torch.arange(expert.numel(), device=expert.device) - starts[expert[order]]
    return rank < capacity


def within_capacity_reference(expert: torch.Tensor, n_experts: int, capacity: int) -> torch.Tensor:
    """``within_capacity`` slot by slot: count each expert's slots in order, keep those before the capacity."""
    seen = [0] * n_experts
    keep = []
    for e in expert.tolist():
        keep.append(seen[e] < capacity)
        seen[e] += 1
    return torch.tensor(keep, dtype=torch.bool, device=expert.device)


def swiglu_expert(x: torch.Tensor, w1: torch.Tensor, w3: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
    """One SwiGLU expert on rows ``x [n, d]``: ``w2 (silu(w1 x) * w3 x)`` -> ``[n, d]``."""
    return F.linear(F.silu(F.linear(x, w1)) * F.linear(x, w3), w2)


def grouped_swiglu(x: torch.Tensor, slots: Slots, w1: torch.Tensor, w3: torch.Tensor,
                   w2: torch.Tensor) -> torch.Tensor:
    """``y_n = sum over the slots s of token n of weight_s * expert_{e_s}(x_n)`` -> ``[N, d]``: the slots sorted by
    expert once, each expert's tokens gathered into one block and run through one matrix product per weight, the
    weighted outputs added back per token (``index_add``). A token with no slot gets 0."""
    n_experts = w1.shape[0]
    order = torch.argsort(slots.expert, stable=True)
    token = slots.token[order]                                                         # (S,) grouped by expert
    counts = torch.bincount(slots.expert, minlength=n_experts).tolist()
    blocks = x.index_select(0, token).split(counts)                                   # E x (count_e, d)
    # unbind: one backward node stacks the experts' gradients (indexing w1[e] would zero-fill a full-size gradient
    # per expert and add them up)
    experts = zip(w1.unbind(0), w3.unbind(0), w2.unbind(0), strict=True)
    outs = [swiglu_expert(block, *weights) for block, weights, n in zip(blocks, experts, counts, strict=True) if n]
    out = torch.zeros_like(x)
    if not outs:
        return out
    ys = torch.cat(outs) * slots.weight[order].to(x.dtype).unsqueeze(-1)              # (S, d)
    return out.index_add(0, token, ys)


def grouped_swiglu_reference(x: torch.Tensor, slots: Slots, w1: torch.Tensor, w3: torch.Tensor,
                             w2: torch.Tensor) -> torch.Tensor:
    """``grouped_swiglu`` slot by slot: each slot's expert run on its one token, weighted, added to that token."""
    rows = [x.new_zeros(x.shape[-1]) for _ in range(x.shape[0])]
    for n, e, w in zip(slots.token.tolist(), slots.expert.tolist(), slots.weight, strict=True):
        rows[n] = rows[n] + w.to(x.dtype) * swiglu_expert(x[n:n + 1], w1[e], w3[e], w2[e])[0]
    return torch.stack(rows)                                                           # (N, d)
