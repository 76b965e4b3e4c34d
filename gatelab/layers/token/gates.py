"""Gates for softmax attention: where they act, how fine they are, and what they compute.

Covers the variant space of "Gated Attention for LLMs" (Qiu et al. 2025, arXiv 2505.06708), including its
non-linearity controls (SDPA-RMSNorm, parameter-free SDPA-SiLU; Table 3) and a fixed output scale (the control
for a sigmoid gate's mean of about 0.5), and the conditional per-head gate of "Quantizable Transformers"
(Bondarenko et al. 2023, arXiv 2306.12929). Gate scores always come from the mixer's input x (the pre-norm
hidden state of the block).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ...config import check_ranges
from ..base import Probe, no_weight_decay, require

Position = Literal["g1", "g2", "g3", "g4", "g5"]
Kind = Literal["gate", "scale", "rmsnorm", "silu"]
Granularity = Literal["elementwise", "headwise"]
Sharing = Literal["head_specific", "head_shared"]
Mode = Literal["multiplicative", "additive"]
Activation = Literal["sigmoid", "silu", "ns_sigmoid", "identity"]
Source = Literal["linear", "per_head", "constant"]
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
    kind: what acts at ``position``. ``gate`` (default): a gate with scores from x, set by the options below.
        The paper's controls, which read no x and have no scores: ``rmsnorm`` (SDPA-RMSNorm: RMSNorm over the
        last dim of each head, epsilon ``norm_eps``, one weight of size d shared by the heads: the paper does not
        say, Qwen's per-head norms (q_norm, k_norm, Qwen3-Next's GDN output norm) share one), ``silu``
        (SDPA-SiLU: ``silu(Y)``, no parameters) and ``scale`` (``Y * scale``, a constant, no parameters: what a
        sigmoid gate does on average, without the input dependence).
    granularity: elementwise (a score per channel) or headwise (one score per head and token).
    sharing: head_specific, or head_shared (scores averaged over heads: one gate shared by all heads).
    mode: multiplicative ``Y * act(xW)`` or additive ``Y + act(xW)`` (the paper pairs additive with silu).
    activation: sigmoid, silu, ns_sigmoid (``0.5 + 0.5 sigmoid``, non-sparse control) or identity.
    source: linear (``xW`` from the whole input, as Qwen's widened q_proj), per_head (Quantizable Transformers:
        head i's score from ``Linear(d_model/H -> 1)`` on slice i of x; headwise only) or constant
        (input-independent: a learned per-head vector, zero-initialised, so a sigmoid gate starts at 0.5).
    init_prob: if set, the gate gets a bias initialised to ``logit(init_prob)`` so a sigmoid gate starts at
        init_prob (Quantizable Transformers' pi_init); per_head always has a bias (default logit(0.5) = 0).
    scale: the constant of kind ``scale`` (default 0.5, a sigmoid gate at zero logits).
    norm_eps: the epsilon of kind ``rmsnorm`` (default 1e-6, Qwen3's RMSNorm).

    Options that the chosen kind does not use (granularity ... init_prob for the controls, scale and norm_eps for
    the other kinds) must keep their defaults: ``check_gate_options`` rejects a setting that would be ignored.
    """

    position: Position = "g1"
    kind: Kind = "gate"
    granularity: Granularity = "elementwise"
    sharing: Sharing = "head_specific"
    mode: Mode = "multiplicative"
    activation: Activation = "sigmoid"
    source: Source = "linear"
    init_prob: float | None = None
    scale: float = 0.5
    norm_eps: float = 1e-6

    RANGES: ClassVar[dict[str, str]] = {"init_prob": "(0, 1)", "scale": "(-inf, inf)", "norm_eps": "(0, inf)"}


# The kind that uses each option; position applies to every kind.
_OPTION_KIND = {"granularity": "gate", "sharing": "gate", "mode": "gate", "activation": "gate", "source": "gate",
                "init_prob": "gate", "scale": "scale", "norm_eps": "rmsnorm"}


def check_gate_options(opts: GateOptions) -> None:
    """Raise ConfigError for a number out of its range, or an option set away from its default that ``opts.kind``
    would ignore."""
    check_ranges(opts, "gate")
    default = GateOptions()
    ignored = [f"gate_{name}={getattr(opts, name)!r} (used by gate_kind={kind!r})"
               for name, kind in _OPTION_KIND.items()
               if kind != opts.kind and getattr(opts, name) != getattr(default, name)]
    require(not ignored, f"gate_kind={opts.kind!r} does not use {', '.join(ignored)}; leave them at their defaults")


def build_gate(d_model: int, n: int, d: int, opts: GateOptions) -> nn.Module:
    """The module for ``opts.kind`` acting on ``Y [B, T, n, d]``: an ``AttentionGate`` or a ``GateControl``."""
    check_gate_options(opts)
    return AttentionGate(d_model, n, d, opts) if opts.kind == "gate" else GateControl(d, opts)


class AttentionGate(nn.Module):
    """Gate a target tensor ``Y [B, T, n, d]`` with scores computed from the input ``x [B, T, d_model]``.

    Parameters (w = d for elementwise, 1 for headwise; +n*w bias terms when ``init_prob`` is set):
    linear ``d_model * n * w``; per_head ``d_model + n``; constant ``n * w``.
    The activated scores pass through ``self.probe`` (``[B, T, n or 1, w]``, for every source).
    """

    def __init__(self, d_model: int, n: int, d: int, opts: GateOptions):
        super().__init__()
        require(opts.kind == "gate", f"AttentionGate computes gate_kind 'gate'; got {opts.kind!r} (use build_gate)")
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


class GateControl(nn.Module):
    """A control in place of the gate, ``Y [B, T, n, d] -> f(Y)``, independent of x (kind ``rmsnorm``, ``silu`` or
    ``scale``; see ``GateOptions``). Parameters: ``d`` for rmsnorm, none otherwise. The scale's constant passes
    through ``self.probe`` (``[1, 1, 1, 1]``), so analysis reads it as the gate score; the others have no score.
    """

    def __init__(self, d: int, opts: GateOptions):
        super().__init__()
        require(opts.kind != "gate", "GateControl is for gate_kind rmsnorm, silu or scale; use AttentionGate")
        self.opts, self.d = opts, d
        self.norm = nn.RMSNorm(d, eps=opts.norm_eps) if opts.kind == "rmsnorm" else None
        self.probe = Probe() if opts.kind == "scale" else None

    def forward(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if self.opts.kind == "rmsnorm":
            return self.norm(y)
        if self.opts.kind == "silu":
            return F.silu(y)
        self.probe(y.new_full((1, 1, 1, 1), self.opts.scale))
        return y * self.opts.scale

    def expected_num_params(self, d_model: int) -> int:
        return self.d if self.norm is not None else 0
