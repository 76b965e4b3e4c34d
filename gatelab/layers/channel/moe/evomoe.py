"""``evomoe``: EvoMoE's expert-diversify stage and Dense-to-Sparse gate (Nie et al. 2021, arXiv 2112.14397)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ....registry import CHANNEL_MIXERS
from ...base import require
from ..base import ChannelMixer
from ..mlp import default_swiglu_width
from .dispatch import Slots, top_k_slots
from .moe import SwiGLUExperts, expert_width
from .router import Router, RoutingStats


@dataclass(kw_only=True)
class EvoMoEConfig:
    """Options of ``evomoe``. Steps count training steps from 0 (``on_train_step``'s ``step``). None for
    ``diversify_steps`` means 10% of the run's steps, for ``anneal_steps`` 50% of them (gatelab's defaults: the
    paper trains for fixed step counts of its own)."""

    d_model: int
    n_experts: int = 8
    diversify_steps: int | None = None
    diversify_mask_ratio: float = 0.5
    tau_max: float = 2.0
    tau_min: float = 0.3
    anneal_steps: int | None = None
    anneal_schedule: Literal["exp", "linear"] = "exp"
    threshold: float = 0.001
    hard_after: int | None = None
    balance_coef: float = 0.01

    RANGES: ClassVar[dict[str, str]] = {"d_model": "[1, inf)", "n_experts": "[1, inf)", "diversify_steps": "[0, inf)",
                                        "diversify_mask_ratio": "[0, 1)",
                                        "tau_max": "(0, inf)", "tau_min": "(0, inf)", "anneal_steps": "[1, inf)",
                                        "threshold": "(0, 1)", "hard_after": "[0, inf)", "balance_coef": "[0, inf)"}

    def check(self) -> None:
        require(self.threshold < 1 / self.n_experts,
                f"threshold={self.threshold} must be < 1 / n_experts = {1 / self.n_experts:.4g}: the Gumbel weights "
                "of a token sum to 1, so a lower threshold always passes at least one expert")
        require(self.tau_min <= self.tau_max,
                f"tau_min={self.tau_min} must be <= tau_max={self.tau_max} (the temperature anneals downwards)")


def temperature_at(t: int, tau_max: float, tau_min: float, anneal_steps: int, schedule: str = "exp") -> float:
    """The gate's temperature ``t`` steps into the annealing (EvoMoE's train.py): ``exp``:
    ``max(tau_max * exp(t * ln(tau_min / tau_max) / anneal_steps), tau_min)``; ``linear``:
    ``max(tau_max - t * (tau_max - tau_min) / anneal_steps, tau_min)``. Both reach tau_min at ``anneal_steps``."""
    if schedule == "exp":
        tau = tau_max * math.exp(t * math.log(tau_min / tau_max) / anneal_steps)
    else:
        tau = tau_max - t * (tau_max - tau_min) / anneal_steps
    return max(tau, tau_min)


def gumbel_noise(like: torch.Tensor) -> torch.Tensor:
    """Standard Gumbel noise ``-log(Exp(1))`` of ``like``'s shape and dtype (what ``F.gumbel_softmax`` draws)."""
    return -torch.empty_like(like).exponential_().log()


def dense_to_sparse_gate(logits: torch.Tensor, noise: torch.Tensor, tau: float, threshold: float,
                         hard: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The DTS gate on ``logits [N, E]`` with Gumbel ``noise [N, E]``: the sample ``G = softmax((logits + noise) /
    tau)``, the expert mask ``G > threshold`` (``hard``: the one-hot argmax of G instead) and the combine weights
    ``mask * softmax(logits)`` (EvoMoE's default, not the Gumbel probabilities). Returns ``(mask bool, weights)``,
    each ``[N, E]``."""
    sample = ((logits + noise) / tau).softmax(dim=-1)                                   # (N, E)
    mask = F.one_hot(sample.argmax(dim=-1), logits.shape[-1]).bool() if hard else sample > threshold
    return mask, mask * logits.softmax(dim=-1)


def dts_balance_loss(mask: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """EvoMoE's balance loss ``E^2 * mean_e(mean_tokens(w_e) * frac_tokens_routed_e)`` (weights ``[N, E]``)."""
    n_experts = weights.shape[-1]
    return n_experts**2 * (weights.mean(dim=0) * mask.to(weights.dtype).mean(dim=0)).mean()


@CHANNEL_MIXERS.register("evomoe")
class EvoMoE(ChannelMixer):
    """EvoMoE (Nie et al. 2021, arXiv 2112.14397; official code codecaution/EvoMoE, ``topkgate.py``).

    ``x [B, T, d_model] -> y [B, T, d_model]`` with E SwiGLU experts of width d_ff (default
    ``default_swiglu_width(d_model)``: at inference one expert runs, as in a dense SwiGLU) and a router
    ``W_g [E, d_model]`` (no bias, float32 or wider). Training goes through two stages, driven by
    ``on_train_step(step, max_steps)``:

    1. Expert-diversify: for ``diversify_steps`` steps every token goes to expert 0 alone (no gate). At the first
       step past it expert 0 spawns the others: expert e (1..E-1) becomes a copy of expert 0 with each weight
       zeroed with probability ``diversify_mask_ratio`` (an independent Bernoulli mask per expert, weight and layer,
       drawn from torch's generator, which the run's seed sets and its checkpoints keep, so the spawn is
       reproducible); expert 0 is kept as it is. The spawned experts continue expert 0's optimiser moments
       (``on_train_step`` returns their weights; the training loop copies the state).
       The paper spawns by random masking; it is not in the released code, and the ratio here is gatelab's choice.
       ``diversify_steps=0`` skips the stage (all experts random from the start).
    2. Gate-sparsify (the Dense-to-Sparse gate, ``dense_to_sparse_gate``): ``G = gumbel_softmax(logits, tau)``,
       every expert with ``G > threshold`` computes, weighted by ``softmax(logits)``; no token is dropped. tau
       anneals from tau_max to tau_min over ``anneal_steps`` (``temperature_at``; exp by default, as the code).
       From step ``hard_after`` (if set) the mask is the one-hot argmax of G (the code's
       ``switch_to_hard_gumbel_softmax``). tau_max 2.0 is the official WMT scripts' value and tau_min 0.3 the
       paper's as gatelab's references give it, unverified (the scripts end at 0.5; the code's defaults are 1.0 and
       0.5).

    Eval routes each token to its top-1 expert with weight ``softmax(logits)_e`` (the code's eval gate), dropping
    nothing; before the spawn, to expert 0. ``aux`` in training (stage 2): ``balance = balance_coef * E^2 *
    mean_e(mean(w_e) * frac_routed_e)`` (the code's). ``stats()``: experts_per_token (the dynamic number of experts
    per token), temperature, router_entropy, load, dropped_fraction (0). The temperature follows from the step
    alone; the ``spawned`` buffer (in the state dict) keeps a resumed run from
    spawning twice, so a resumed run equals an uninterrupted one.

    Parameters: ``d_model * E + 3 * E * d_model * d_ff``. Active (eval, top-1): ``d_model * E + 3 * d_model * d_ff``.
    """

    description = "EvoMoE: one expert spawns the others, then a Gumbel gate anneals from dense to sparse"
    paper = "Nie et al. 2021, arXiv 2112.14397"
    may_skip_parameters = True   # the router waits for the spawn
    Config = EvoMoEConfig

    def __init__(self, d_model: int, d_ff: int | None = None, **options: Any):
        super().__init__()
        cfg = self.configure(d_model, options)
        self.config = cfg
        self.d_ff = expert_width(d_model, d_ff, default_swiglu_width(d_model))
        self.router = Router(d_model, cfg.n_experts, top_k=1, normalize_topk=False)
        self.experts = SwiGLUExperts(cfg.n_experts, d_model, self.d_ff)
        self.register_buffer("spawned", torch.tensor(cfg.diversify_steps == 0))
        self.temperature, self.hard = cfg.tau_max, False
        self.routing_stats = RoutingStats(cfg.n_experts)

    def stages(self, max_steps: int) -> tuple[int, int]:
        """``(diversify_steps, anneal_steps)`` of a run of ``max_steps`` steps."""
        cfg = self.config
        diversify = cfg.diversify_steps if cfg.diversify_steps is not None else round(0.1 * max_steps)
        anneal = cfg.anneal_steps if cfg.anneal_steps is not None else max(1, round(0.5 * max_steps))
        return diversify, anneal

    def on_train_step(self, step: int, max_steps: int) -> list[nn.Parameter]:
        cfg = self.config
        diversify, anneal = self.stages(max_steps)
        spawned = []
        if step >= diversify and not bool(self.spawned):
            spawned = self.spawn()
        self.temperature = temperature_at(max(step - diversify, 0), cfg.tau_max, cfg.tau_min, anneal,
                                          cfg.anneal_schedule)
        self.hard = cfg.hard_after is not None and step >= cfg.hard_after
        return spawned

    @torch.no_grad()
    def spawn(self) -> list[nn.Parameter]:
        """Experts 1..E-1 become copies of expert 0 with each weight zeroed with probability diversify_mask_ratio;
        returns the expert weights (whose rows 1.. are now copies of row 0)."""
        weights = [self.experts.w1, self.experts.w3, self.experts.w2]
        for w in weights:
            keep = torch.rand((w.shape[0] - 1, *w.shape[1:])) >= self.config.diversify_mask_ratio
            w[1:] = w[0] * keep.to(device=w.device, dtype=w.dtype)
        self.spawned.fill_(True)
        return weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1])                                              # (N, d)
        n, n_experts = flat.shape[0], self.config.n_experts
        self.aux = {}
        if not bool(self.spawned):   # expert-diversify: the one base expert
            base = torch.zeros(n, dtype=torch.long, device=x.device)
            slots = Slots(torch.arange(n, device=x.device), base, torch.ones(n, dtype=x.dtype, device=x.device))
            probs = F.one_hot(base, n_experts).to(x.dtype)
        elif self.training:          # the Dense-to-Sparse gate
            logits = self.router.logits(flat)
            mask, weights = dense_to_sparse_gate(logits, gumbel_noise(logits), self.temperature,
                                                 self.config.threshold, self.hard)
            token, expert = mask.nonzero(as_tuple=True)
            slots, probs = Slots(token, expert, weights[token, expert]), logits.softmax(dim=-1)
            self.aux = {"balance": self.config.balance_coef * dts_balance_loss(mask, weights)}
        else:                        # eval: top-1
            routing = self.router(flat)
            slots, probs = top_k_slots(routing), routing.probs
        y = self.experts(flat, slots)
        self.routing_stats.add(torch.tensor(slots.token.numel(), device=x.device), torch.zeros((), device=x.device),
                               slots.expert, probs)
        return y.view_as(x)

    def stats(self) -> dict[str, Any]:
        return {**self.routing_stats.as_dict(), "temperature": self.temperature}

    def reset_stats(self) -> None:
        self.routing_stats.reset()

    def active_params(self) -> int:
        return self.config.d_model * self.config.n_experts + 3 * self.config.d_model * self.d_ff

    def expected_num_params(self) -> int:
        d, e = self.config.d_model, self.config.n_experts
        return d * e + 3 * e * d * self.d_ff
