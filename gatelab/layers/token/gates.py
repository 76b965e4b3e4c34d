"""Gates for softmax attention: where they act, how fine they are, and what they compute.

Covers the variant space of "Gated Attention for LLMs" (Qiu et al. 2025, arXiv 2505.06708) and the
conditional per-head gate of "Quantizable Transformers" (Bondarenko et al. 2023, arXiv 2306.12929).
The scores always come from the mixer's input x (the pre-norm hidden state of the block).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..base import Probe, no_weight_decay, require

Position = Literal["g1", "g2", "g3", "g4", "g5"]
ACTIVATIONS = {
    "sigmoid": torch.sigmoid,
    "silu": F.silu,
    "ns_sigmoid": lambda x: 0.5 + 0.5 * torch.sigmoid(x),
    "identity": lambda x: x,
}


@dataclass(kw_only=True)
class GateOptions:
    """Gate options (the defaults are the paper's best: G1, elementwise, head-specific, sigmoid, multiplicative).

    position: g1 after SDPA (per head, before o_proj), g2 after V, g3 after K, g4 after Q, g5 after o_proj.
    granularity: elementwise (a score per channel) or headwise (one score per head and token).
    sharing: head_specific, or head_shared (scores averaged over heads: one gate shared by all heads).
    mode: multiplicative ``Y * act(xW)`` or additive ``Y + act(xW)`` (the paper pairs additive with silu).
    activation: sigmoid, silu, ns_sigmoid (``0.5 + 0.5 sigmoid``, non-sparse control) or identity.
    source: linear (``xW`` from the whole input, as Qwen's widened q_proj), per_head (Quantizable Transformers:
        head i's score from ``Linear(d_model/H -> 1)`` on slice i of x; headwise only) or constant
        (input-independent: a learned per-head vector, zero-initialised).
    init_prob: if set, the gate gets a bias initialised to ``logit(init_prob)`` so a sigmoid gate starts at
        init_prob (Quantizable Transformers' pi_init); per_head always has a bias (default logit(0.5) = 0).
    """

    position: Position = "g1"
    granularity: Literal["elementwise", "headwise"] = "elementwise"
    sharing: Literal["head_specific", "head_shared"] = "head_specific"
    mode: Literal["multiplicative", "additive"] = "multiplicative"
    activation: Literal["sigmoid", "silu", "ns_sigmoid", "identity"] = "sigmoid"
    source: Literal["linear", "per_head", "constant"] = "linear"
    init_prob: float | None = None


class AttentionGate(nn.Module):
    """Gate a target tensor ``Y [B, T, n, d]`` with scores computed from the input ``x [B, T, d_model]``.

    Parameters (w = d for elementwise, 1 for headwise; +n*w bias terms when ``init_prob`` is set):
    linear ``d_model * n * w``; per_head ``d_model + n``; constant ``n * w``.
    The activated scores pass through ``self.probe`` (``[B, T, n or 1, w]``, or ``[1, 1, ...]`` for constant).
    """

    def __init__(self, d_model: int, n: int, d: int, opts: GateOptions):
        super().__init__()
        require(opts.init_prob is None or 0.0 < opts.init_prob < 1.0,
                f"gate init_prob must lie in (0, 1); got {opts.init_prob}")
        self.opts, self.n, self.width = opts, n, (d if opts.granularity == "elementwise" else 1)
        bias = opts.init_prob is not None
        init_bias = math.log(opts.init_prob / (1 - opts.init_prob)) if bias else 0.0
        if opts.source == "linear":
            self.proj = nn.Linear(d_model, n * self.width, bias=bias)
            if bias:
                nn.init.constant_(self.proj.bias, init_bias)
        elif opts.source == "per_head":
            require(opts.granularity == "headwise", "gate source 'per_head' gives one score per head: "
                    "use granularity='headwise'")
            require(d_model % n == 0, f"gate source 'per_head' splits d_model={d_model} into {n} heads: "
                    "d_model must be divisible by the number of gated heads")
            self.weight = nn.Parameter(torch.randn(n, d_model // n) * (d_model // n) ** -0.5)
            self.bias = nn.Parameter(torch.full((n,), init_bias))
        else:
            self.logits = nn.Parameter(torch.full((n, self.width), init_bias))
            no_weight_decay(self, "logits")  # an input-independent gate is a bias: no decay, like the biases
        self.act = ACTIVATIONS[opts.activation]
        self.probe = Probe()

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """Activated gate scores ``[B, T, n, w]`` (``[B, T, 1, w]`` when head-shared)."""
        B, T, _ = x.shape
        if self.opts.source == "linear":
            logits = self.proj(x).view(B, T, self.n, self.width)                      # (B, T, n, w)
        elif self.opts.source == "per_head":
            xs = x.view(B, T, self.n, -1)                                              # (B, T, n, d_model/n)
            logits = (xs * self.weight).sum(-1, keepdim=True) + self.bias.unsqueeze(-1)  # (B, T, n, 1)
        else:
            logits = self.logits.expand(B, T, self.n, self.width)                     # (B, T, n, w)
        s = self.act(logits)
        if self.opts.sharing == "head_shared":
            s = s.mean(dim=2, keepdim=True)                                            # (B, T, 1, w)
        return self.probe(s)

    def forward(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        s = self.scores(x)
        return y * s if self.opts.mode == "multiplicative" else y + s

    def expected_num_params(self, d_model: int) -> int:
        extra = self.n * self.width if self.opts.init_prob is not None else 0
        if self.opts.source == "linear":
            return d_model * self.n * self.width + extra
        if self.opts.source == "per_head":
            return d_model + self.n
        return self.n * self.width
