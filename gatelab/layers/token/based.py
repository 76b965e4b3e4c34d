"""Based token mixer (``based``): a short gated convolution, then linear attention with a Taylor feature map."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ...ops.simple_gla import chunk_simple_gla, recurrent_simple_gla
from ...registry import MIXERS
from .convolution import BaseConv
from .gla import head_split
from .recurrent import RecurrentMixer, RecurrentOptions


def taylor_feature_map(x: torch.Tensor) -> torch.Tensor:
    """``phi(x) = [1, x / d^(1/4), vec(x x^T) / (sqrt(2) sqrt(d))]`` over the last dim (d -> 1 + d + d^2), so that
    ``phi(q) . phi(k) = 1 + q.k / sqrt(d) + (q.k)^2 / (2 d)``, the 2nd-order Taylor expansion of
    ``exp(q.k / sqrt(d))``."""
    d = x.shape[-1]
    outer = (x.unsqueeze(-1) * x.unsqueeze(-2)).flatten(-2) / (math.sqrt(2) * math.sqrt(d))  # (..., d^2)
    return torch.cat([torch.ones_like(x[..., :1]), x / d**0.25, outer], dim=-1)


@dataclass(kw_only=True)
class BasedConfig(RecurrentOptions):
    """Options of ``based`` (Zoology's MQAR configuration: feature_dim 16, a kernel-3 gated convolution)."""

    d_model: int
    n_heads: int = 1
    feature_dim: int = 16
    conv_size: int = 3
    eps: float = 1e-6

    RANGES: ClassVar[dict[str, str]] = {**RecurrentOptions.RANGES, "d_model": "[1, inf)", "n_heads": "[1, inf)",
                                        "feature_dim": "[1, inf)", "conv_size": "[1, inf)", "eps": "(0, inf)"}


@MIXERS.register("based")
class Based(RecurrentMixer):
    """Based (Arora et al. 2024, arXiv 2402.18668), as Zoology pairs it: ``u = BaseConv(x)`` (short gated
    convolution), then normalised linear attention on u with the Taylor feature map,
    ``o_t = phi(q_t) S_t / (phi(q_t) z_t)``, and o_proj. q and k have ``feature_dim`` per head, v ``d_model / H``.

    Parameters, with F = feature_dim and H heads: ``d * k + d + d^2 + d`` (BaseConv, kernel k)
    + ``2 * d * H * F`` (q/k_proj) + ``2 * d^2`` (v_proj, o_proj). State per head:
    ``(1 + F + F^2) x (d/H + 1)`` floats, plus the convolution's last k - 1 inputs.
    """

    description = "Based: gated short conv + linear attention with a 2nd-order Taylor feature map"
    paper = "Arora et al. 2024, arXiv 2402.18668"
    Config = BasedConfig
    chunk_op, recurrent_op = staticmethod(chunk_simple_gla), staticmethod(recurrent_simple_gla)

    def __init__(self, d_model: int, **options):
        super().__init__()
        cfg = self.configure(d_model, options)
        self.head_v = head_split(d_model, d_model, cfg.n_heads, "d_model")
        self.config = cfg
        self.conv = BaseConv(d_model, kernel_size=cfg.conv_size)
        self.q_proj = nn.Linear(d_model, cfg.n_heads * cfg.feature_dim, bias=False)
        self.k_proj = nn.Linear(d_model, cfg.n_heads * cfg.feature_dim, bias=False)
        self.v_proj = nn.Linear(d_model, d_model, bias=False)
        self.o_proj = nn.Linear(d_model, d_model, bias=False)

    def short_conv(self, u, conv_state):
        return self.conv(u, conv_state)

    def features(self, x, conv_state, offset):
        B, T, _ = x.shape
        H, F = self.config.n_heads, self.config.feature_dim
        u, conv_state = self.short_conv(x, conv_state)                                   # (B, T, d)
        q = taylor_feature_map(self.q_proj(u).view(B, T, H, F))                          # (B, T, H, 1 + F + F^2)
        k = taylor_feature_map(self.k_proj(u).view(B, T, H, F))
        v = self.v_proj(u).view(B, T, H, self.head_v)
        v1 = torch.cat([v, torch.ones_like(v[..., :1])], dim=-1)                        # (B, T, H, d/H + 1)
        return (q, k, v1), {"scale": 1.0}, None, conv_state

    def output(self, o, gate, x):
        o = o[..., :-1] / (o[..., -1:] + self.config.eps)                                # (B, T, H, d/H)
        return self.o_proj(o.flatten(2))

    def state_size(self, seq_len: int) -> int:
        F = self.config.feature_dim
        return self.config.n_heads * (1 + F + F * F) * (self.head_v + 1) + self.conv.state_size(seq_len)

    def expected_num_params(self) -> int:
        c = self.config
        return self.conv.expected_num_params() + 2 * c.d_model * c.n_heads * c.feature_dim + 2 * c.d_model**2
