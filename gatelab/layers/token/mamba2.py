"""Mamba2 token mixer (``mamba2``): the SSD layer with a scalar decay per head."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ...ops.simple_gla import chunk_simple_gla, recurrent_simple_gla
from ...registry import MIXERS
from ..base import Probe, no_weight_decay, require
from ..conv import ShortConv
from .recurrent import RecurrentMixer, RecurrentOptions


@dataclass(kw_only=True)
class Mamba2Config(RecurrentOptions):
    """Options of ``mamba2``: inner width ``expand * d_model`` split into ``n_heads`` heads; ``d_state`` is the
    state size N per head; ``n_groups`` groups of B and C, each shared by ``n_heads / n_groups`` consecutive
    heads (mamba_ssm's ngroups, default 1: one B and C for all heads)."""

    d_model: int
    n_heads: int = 4
    n_groups: int = 1
    expand: int = 2
    d_state: int = 16
    conv_size: int = 4

    RANGES: ClassVar[dict[str, str]] = {**RecurrentOptions.RANGES, "d_model": "[1, inf)", "n_heads": "[1, inf)",
                                        "n_groups": "[1, inf)", "expand": "[1, inf)", "d_state": "[1, inf)",
                                        "conv_size": "[1, inf)"}


@MIXERS.register("mamba2")
class Mamba2(RecurrentMixer):
    """Mamba2 (Dao & Gu 2024, arXiv 2405.21060), the SSD form, laid out as mamba_ssm's Mamba2.

    ``in_proj(x) -> (z, x, B, C, dt)`` with B and C ``[G, N]`` for G = n_groups; ``(x, B, C)`` through a causal
    conv and SiLU; ``dt = softplus(dt + dt_bias)``; per head h, with g(h) = h // (H / G) its group,
    ``S_t = e^{dt_t A} S_{t-1} + B_{t,g(h)}^T (dt_t x_t)``, ``y_t = C_{t,g(h)} S_t + D x_t`` with
    ``A = -exp(A_log)``; then ``RMSNorm(y * silu(z))`` over each group's ``E / G`` channels (mamba_ssm's
    group_size) and out_proj.

    Parameters, with ``E = expand * d_model``, N = d_state, H heads, G groups: ``d_model * (2E + 2GN + H)``
    (in_proj) + ``(E + 2GN) * (conv_size + 1)`` (conv with bias) + ``3H`` (A_log, dt_bias, D) + ``E`` (norm)
    + ``E * d_model`` (out_proj). A_log, dt_bias and D get no weight decay, as in mamba_ssm. ``e^{dt A}``
    passes through ``decay_probe``.
    """

    description = "Mamba2 / SSD: selective state space with a scalar decay per head"
    paper = "Dao & Gu 2024, arXiv 2405.21060"
    Config = Mamba2Config
    chunk_op, recurrent_op = staticmethod(chunk_simple_gla), staticmethod(recurrent_simple_gla)

    def __init__(self, d_model: int, **options):
        super().__init__()
        cfg = self.configure(d_model, options)
        self.inner = cfg.expand * d_model
        require(self.inner % cfg.n_heads == 0,
                f"inner width expand*d_model={self.inner} must be a multiple of n_heads={cfg.n_heads}")
        require(cfg.n_heads % cfg.n_groups == 0, f"n_heads={cfg.n_heads} must be a multiple of n_groups={cfg.n_groups}")
        self.config = cfg
        H, GN, E = cfg.n_heads, cfg.n_groups * cfg.d_state, self.inner
        self.head_dim = E // H
        self.in_proj = nn.Linear(d_model, 2 * E + 2 * GN + H, bias=False)
        self.conv = ShortConv(E + 2 * GN, cfg.conv_size)
        self.A_log = nn.Parameter(torch.empty(H).uniform_(1, 16).log())
        dt = torch.exp(torch.empty(H).uniform_(math.log(1e-3), math.log(1e-1))).clamp(min=1e-4)
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))  # softplus(dt_bias) = dt
        self.D = nn.Parameter(torch.ones(H))
        no_weight_decay(self, "A_log", "dt_bias", "D")  # as mamba_ssm's Mamba2 (modules/mamba2.py)
        self.norm = nn.RMSNorm(E, eps=cfg.norm_eps)  # its weight; applied per group in output()
        self.out_proj = nn.Linear(E, d_model, bias=False)
        self.decay_probe = Probe()

    def features(self, x, conv_state, offset):
        B, T, _ = x.shape
        H, G, N, E, P = self.config.n_heads, self.config.n_groups, self.config.d_state, self.inner, self.head_dim
        z, xBC, dt = self.in_proj(x).split([E, E + 2 * G * N, H], dim=-1)
        xBC, conv_state = self.short_conv(xBC, conv_state)
        xs, Bs, Cs = xBC.split([E, G * N, G * N], dim=-1)                                # (B, T, E), (B, T, GN) x2
        dt = F.softplus(dt + self.dt_bias)                                               # (B, T, H)
        g = -self.A_log.exp() * dt                                                       # (B, T, H) log decay <= 0
        if self.decay_probe.active:
            self.decay_probe(g.exp())
        xs = xs.view(B, T, H, P)                                                         # (B, T, H, P)
        q = Cs.view(B, T, G, 1, N).expand(B, T, G, H // G, N).reshape(B, T, H, N)        # (B, T, H, N) per group
        k = Bs.view(B, T, G, 1, N).expand(B, T, G, H // G, N).reshape(B, T, H, N)
        return (q, k, xs * dt.unsqueeze(-1)), {"g": g, "scale": 1.0}, (z, xs), conv_state

    def output(self, o, gate, x):
        z, xs = gate
        y = (o + self.D.view(1, 1, -1, 1) * xs).flatten(2) * F.silu(z)                  # (B, T, E)
        y = y.unflatten(-1, (self.config.n_groups, -1))                                  # (B, T, G, E / G)
        y = F.rms_norm(y, y.shape[-1:], eps=self.norm.eps).flatten(2) * self.norm.weight  # (B, T, E)
        return self.out_proj(y)                                                          # (B, T, d_model)

    def state_size(self, seq_len: int) -> int:
        return self.config.n_heads * self.config.d_state * self.head_dim + self.conv_state_size()

    def expected_num_params(self) -> int:
        c, E, GN, H = self.config, self.inner, self.config.n_groups * self.config.d_state, self.config.n_heads
        return c.d_model * (2 * E + 2 * GN + H) + (E + 2 * GN) * (c.conv_size + 1) + 3 * H + E + E * c.d_model
