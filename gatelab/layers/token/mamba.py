"""Mamba token mixer (``mamba``): the selective state space layer of Mamba-1."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ...ops.selective_scan import chunk_selective_scan, recurrent_selective_scan
from ...registry import MIXERS
from ..base import Probe, no_weight_decay
from ..conv import ShortConv
from .recurrent import RecurrentMixer, RecurrentOptions


@dataclass(kw_only=True)
class MambaConfig(RecurrentOptions):
    """Options of ``mamba`` (mamba_ssm defaults: expand 2, d_state 16, conv 4, dt_rank = ceil(d_model / 16)).
    ``n_heads`` is accepted and unused (every channel has its own state). Chunks of 16 suit the scan on a CPU
    (``ops/selective_scan/README.md``)."""

    d_model: int
    chunk_size: int = 16
    n_heads: int = 1
    expand: int = 2
    d_state: int = 16
    conv_size: int = 4
    dt_rank: int | None = None

    RANGES: ClassVar[dict[str, str]] = {**RecurrentOptions.RANGES, "d_model": "[1, inf)", "n_heads": "[1, inf)",
                                        "expand": "[1, inf)", "d_state": "[1, inf)", "conv_size": "[1, inf)",
                                        "dt_rank": "[1, inf)"}


@MIXERS.register("mamba")
class Mamba(RecurrentMixer):
    """Mamba (Gu & Dao 2023, arXiv 2312.00752): ``in_proj(x) -> (u, z)``; u through a causal conv and SiLU;
    input-dependent ``dt, B, C`` from ``x_proj(u)`` (dt through a rank-R ``dt_proj`` and softplus); the selective
    scan ``h_t = exp(dt_t A) h_{t-1} + dt_t B_t u_t``, ``y_t = C_t h_t + D u_t``; then ``out_proj(y * silu(z))``.

    Parameters, with E = expand * d_model, N = d_state, R = dt_rank: ``2 d E`` (in_proj) + ``E (k + 1)`` (conv)
    + ``E (R + 2N)`` (x_proj) + ``R E + E`` (dt_proj) + ``E N`` (A_log) + ``E`` (D) + ``E d`` (out_proj).
    A_log and D get no weight decay, as in mamba_ssm. The state per sequence is ``E x N`` plus the
    convolution's last k - 1 inputs. ``exp(dt A)`` averaged over the state passes through ``decay_probe`` as
    ``[B, T, E]``.
    """

    description = "Mamba: selective state space (input-dependent dt, B, C per channel)"
    paper = "Gu & Dao 2023, arXiv 2312.00752"
    Config = MambaConfig
    chunk_op, recurrent_op = staticmethod(chunk_selective_scan), staticmethod(recurrent_selective_scan)

    def __init__(self, d_model: int, **options):
        super().__init__()
        cfg = self.configure(d_model, options)
        cfg.dt_rank = cfg.dt_rank or math.ceil(d_model / 16)
        self.config = cfg
        E, N, R = cfg.expand * d_model, cfg.d_state, cfg.dt_rank
        self.inner = E
        self.in_proj = nn.Linear(d_model, 2 * E, bias=False)
        self.conv = ShortConv(E, cfg.conv_size)
        self.x_proj = nn.Linear(E, R + 2 * N, bias=False)
        self.dt_proj = nn.Linear(R, E, bias=True)
        nn.init.uniform_(self.dt_proj.weight, -(R**-0.5), R**-0.5)
        dt = torch.exp(torch.empty(E).uniform_(math.log(1e-3), math.log(1e-1))).clamp(min=1e-4)
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # softplus(bias) = dt
        self.A_log = nn.Parameter(torch.log(torch.arange(1, N + 1, dtype=torch.float32)).repeat(E, 1))
        self.D = nn.Parameter(torch.ones(E))
        no_weight_decay(self, "A_log", "D")  # as mamba_ssm's Mamba (modules/mamba_simple.py)
        self.out_proj = nn.Linear(E, d_model, bias=False)
        self.decay_probe = Probe()

    def features(self, x, conv_state, offset):
        E, N, R = self.inner, self.config.d_state, self.config.dt_rank
        u, z = self.in_proj(x).split([E, E], dim=-1)                                     # (B, T, E) each
        u, conv_state = self.short_conv(u, conv_state)
        dt, Bm, Cm = self.x_proj(u).split([R, N, N], dim=-1)                             # (B, T, R|N|N)
        dt = F.softplus(self.dt_proj(dt))                                                # (B, T, E)
        A = -self.A_log.exp().to(u.dtype)                                                # (E, N)
        if self.decay_probe.active:
            self.decay_probe((dt.unsqueeze(-1) * A).exp().mean(-1))
        return (u, dt, A, Bm, Cm), {"D": self.D.to(u.dtype)}, z, conv_state

    def output(self, y, z, x):
        return self.out_proj(y * F.silu(z))                                              # (B, T, d_model)

    def state_size(self, seq_len: int) -> int:
        return self.inner * self.config.d_state + self.conv_state_size()

    def expected_num_params(self) -> int:
        c, E, N, R = self.config, self.inner, self.config.d_state, self.config.dt_rank
        return 2 * c.d_model * E + E * (c.conv_size + 1) + E * (R + 2 * N) + R * E + E + E * N + E + E * c.d_model
