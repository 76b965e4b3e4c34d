"""``pregated_moe``: Pre-gated MoE (Hwang et al., ISCA 2024, arXiv 2308.12066): each block's pre-gate computes the
next block's routing from this block's input."""
from __future__ import annotations

from typing import Any

import torch

from ....config import ConfigError
from ....registry import CHANNEL_MIXERS
from .moe import MoE
from .router import Router, top_k_routing

CARRY_KEY = "pregated_moe.logits"


@CHANNEL_MIXERS.register("pregated_moe")
class PreGatedMoE(MoE):
    """Pre-gated mixture of experts (Hwang et al., ISCA 2024, arXiv 2308.12066).

    ``forward(x [B, T, d_model], carry) -> y [B, T, d_model]``: the experts, dispatch, options, ``aux`` and
    ``stats()`` of ``moe``, but block i's routing logits ``[B*T, E]`` come from the previous pre-gated block,
    through ``carry[CARRY_KEY]``, and block i writes there the logits of the next pre-gated block, computed by its
    ``pre_gate`` from block i's input: a server knows each block's experts one block ahead. The first pre-gated
    block of a forward (nothing in the carry, or ``carry`` None for a layer used on its own) routes with its own
    ordinary gate, ``router``. Top-k as ``moe`` (the paper uses Switch's top-1: ``top_k=1,
    normalize_topk=false``).

    The model builds every block alike, so each holds both gates: the first block's ``pre_gate`` and ``router``
    are both used, later blocks use only ``pre_gate``, and the last block's ``pre_gate`` output goes unused; an
    unused gate gets no gradient. The carry lives for one model forward, so a decoded token is routed exactly as
    in the full forward (routing is per token).

    Parameters: ``moe``'s + ``d_model * E`` (the pre-gate). Active: ``moe``'s (one gate, top_k experts, the
    shared expert).
    """

    description = "pre-gated MoE: block i's pre-gate picks block i+1's experts from block i's input"
    paper = "Hwang et al. 2024 (ISCA), arXiv 2308.12066"
    may_skip_parameters = True   # a block fed by the one before never uses its own router; the last pre-gate idles
    uses_carry = True

    def __init__(self, d_model: int, d_ff: int | None = None, **options: Any):
        super().__init__(d_model, d_ff, **options)
        cfg = self.config
        self.pre_gate = Router(d_model, cfg.n_experts, cfg.top_k, cfg.normalize_topk)

    def forward(self, x: torch.Tensor, carry: dict[str, Any] | None = None) -> torch.Tensor:
        carry = {} if carry is None else carry
        flat = x.reshape(-1, x.shape[-1])                                              # (N, d)
        logits = carry.pop(CARRY_KEY, None)
        if logits is None:
            logits = self.router.logits(flat)
        elif logits.shape != (flat.shape[0], self.config.n_experts):
            raise ConfigError(f"pregated_moe: the previous block routed {tuple(logits.shape)} (tokens, experts); "
                              f"this block has {flat.shape[0]} tokens and n_experts={self.config.n_experts}: "
                              "every pregated_moe block of a model needs the same n_experts")
        carry[CARRY_KEY] = self.pre_gate.logits(flat)
        routing = top_k_routing(logits, self.config.top_k, self.config.normalize_topk)
        return self.mix(flat, routing).view_as(x)

    def expected_num_params(self) -> int:
        return super().expected_num_params() + self.config.d_model * self.config.n_experts
