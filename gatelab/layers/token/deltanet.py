"""DeltaNet (``deltanet``) and Gated DeltaNet (``gdn``) token mixers."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ...ops.delta_rule import chunk_gated_delta_rule, recurrent_gated_delta_rule
from ...registry import MIXERS
from ..base import Probe, no_weight_decay, require, resolve_head_dim
from ..conv import ShortConv
from .recurrent import GatedRMSNorm, RecurrentMixer, RecurrentOptions


@dataclass(kw_only=True)
class DeltaNetConfig(RecurrentOptions):
    """Options of ``deltanet``: ``head_dim`` defaults to ``d_model // n_heads``; values are ``expand_v`` times
    wider. ``use_output_gate`` adds GDN's swish output gate (off in DeltaNet, as in flash-linear-attention)."""

    d_model: int
    n_heads: int = 4
    head_dim: int | None = None
    expand_v: float = 1.0
    use_short_conv: bool = True
    conv_size: int = 4
    use_output_gate: bool = False

    RANGES: ClassVar[dict[str, str]] = {**RecurrentOptions.RANGES, "d_model": "[1, inf)", "n_heads": "[1, inf)",
                                        "head_dim": "[1, inf)", "expand_v": "(0, inf)", "conv_size": "[1, inf)"}


@dataclass(kw_only=True)
class GatedDeltaNetConfig(DeltaNetConfig):
    """Options of ``gdn``. Defaults as the paper's code and flash-linear-attention: one value head per q/k head,
    each value head ``expand_v = 2`` times wider than head_dim, output gate on. ``num_v_heads`` (default
    ``n_heads``) is grouped value attention, as Qwen3-Next: more value heads than q/k heads, a multiple of
    ``n_heads``; value head j reads q/k head ``j // (num_v_heads // n_heads)`` and has its own decay and beta.
    Qwen3-Next's layers are ``n_heads=16, num_v_heads=32, expand_v=1`` (head dims 128)."""

    expand_v: float = 2.0
    use_output_gate: bool = True
    num_v_heads: int | None = None

    RANGES: ClassVar[dict[str, str]] = {**DeltaNetConfig.RANGES, "num_v_heads": "[1, inf)"}


@MIXERS.register("deltanet")
class DeltaNet(RecurrentMixer):
    """DeltaNet (Schlag et al. 2021; Yang et al. 2024, arXiv 2406.06484): the delta rule
    ``S_t = (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T`` with ``beta = sigmoid(x W_b)``, q and k passed
    through a short convolution and SiLU, then L2-normalised; per-head RMSNorm (optionally gated) and o_proj.

    Parameters, with ``K = H * head_dim``, ``Hv`` value heads (``H`` here; ``num_v_heads`` in ``gdn``) of width
    ``Dv = head_dim * expand_v`` and ``V = Hv * Dv``: ``d_model * (2K + V)`` (q/k/v_proj) + ``d_model * Hv``
    (b_proj) + ``(2K + V) * conv_size`` (short conv, no bias) + ``Dv`` (o_norm) + ``V * d_model`` (o_proj)
    + ``d_model * V`` with the output gate. ``beta [B, T, Hv]`` passes through ``beta_probe``.
    """

    description = "delta rule: error-correcting writes to a matrix memory, chunked by the UT transform"
    paper = "Schlag et al. 2021; Yang et al. 2024, arXiv 2406.06484"
    Config = DeltaNetConfig
    chunk_op, recurrent_op = staticmethod(chunk_gated_delta_rule), staticmethod(recurrent_gated_delta_rule)

    def __init__(self, d_model: int, **options):
        super().__init__()
        cfg = self.configure(d_model, options)
        cfg.head_dim = resolve_head_dim(d_model, cfg.n_heads, cfg.head_dim)
        self.head_v = int(cfg.head_dim * cfg.expand_v)
        require(self.head_v >= 1, f"head_dim*expand_v must be >= 1; got {self.head_v}")
        self.config = cfg
        self.n_v_heads = self.value_heads(cfg)
        K, V = cfg.n_heads * cfg.head_dim, self.n_v_heads * self.head_v
        self.key_dim, self.value_dim = K, V
        self.q_proj = nn.Linear(d_model, K, bias=False)
        self.k_proj = nn.Linear(d_model, K, bias=False)
        self.v_proj = nn.Linear(d_model, V, bias=False)
        self.b_proj = nn.Linear(d_model, self.n_v_heads, bias=False)
        self.conv = ShortConv(2 * K + V, cfg.conv_size, bias=False) if cfg.use_short_conv else None
        self.g_proj = nn.Linear(d_model, V, bias=False) if cfg.use_output_gate else None
        self.o_norm = GatedRMSNorm(self.head_v, cfg.norm_eps)
        self.o_proj = nn.Linear(V, d_model, bias=False)
        self.beta_probe = Probe()

    def value_heads(self, cfg: DeltaNetConfig) -> int:
        """The number of value heads (DeltaNet: one per q/k head)."""
        return cfg.n_heads

    def decay(self, x: torch.Tensor) -> dict:
        """Log decays for the op (none in DeltaNet)."""
        return {}

    def features(self, x, conv_state, offset):
        B, T, _ = x.shape
        cfg, Hv = self.config, self.n_v_heads
        qkv = torch.cat([self.q_proj(x), self.k_proj(x), self.v_proj(x)], dim=-1)       # (B, T, 2K + V)
        qkv, conv_state = self.short_conv(qkv, conv_state)
        q, k, v = qkv.split([self.key_dim, self.key_dim, self.value_dim], dim=-1)
        q = F.normalize(q.view(B, T, cfg.n_heads, cfg.head_dim), dim=-1)                # (B, T, H, K/H)
        k = F.normalize(k.view(B, T, cfg.n_heads, cfg.head_dim), dim=-1)
        if Hv != cfg.n_heads:  # grouped value heads: value head j reads q/k head j // (Hv / H)
            q = q.repeat_interleave(Hv // cfg.n_heads, dim=2)                            # (B, T, Hv, K/H)
            k = k.repeat_interleave(Hv // cfg.n_heads, dim=2)
        v = v.view(B, T, Hv, self.head_v)                                                # (B, T, Hv, Dv)
        beta = self.beta_probe(torch.sigmoid(self.b_proj(x)))                            # (B, T, Hv)
        gate = self.g_proj(x).view(B, T, Hv, self.head_v) if self.g_proj is not None else None
        return (q, k, v), {"beta": beta, **self.decay(x)}, gate, conv_state

    def output(self, o, gate, x):
        return self.o_proj(self.o_norm(o, gate).flatten(2))                              # (B, T, d_model)

    def state_size(self, seq_len: int) -> int:
        return self.n_v_heads * self.config.head_dim * self.head_v + self.conv_state_size()

    def expected_num_params(self) -> int:
        c, K, V = self.config, self.key_dim, self.value_dim
        conv = (2 * K + V) * c.conv_size if c.use_short_conv else 0
        gate = c.d_model * V if c.use_output_gate else 0
        return c.d_model * (2 * K + V) + c.d_model * self.n_v_heads + conv + self.head_v + V * c.d_model + gate


@MIXERS.register("gdn")
class GatedDeltaNet(DeltaNet):
    """Gated DeltaNet (Yang, Kautz, Hatamizadeh 2024, arXiv 2412.06464), the linear layer of Qwen3-Next.

    The delta rule with a decay per value head ``g = -exp(A_log) * softplus(x W_a + dt_bias)`` (Mamba2's
    parameterisation): ``S_t = e^{g_t} (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T``; output
    ``o_proj(RMSNorm(o) * silu(x W_g))``. The defaults are the paper's and flash-linear-attention's (one value
    head per q/k head, values ``expand_v = 2`` times wider); Qwen3-Next instead has twice as many value heads as
    q/k heads, each as wide as head_dim: ``num_v_heads = 2 * n_heads, expand_v = 1`` (grouped value heads; see
    ``GatedDeltaNetConfig``). State ``[B, Hv, head_dim, Dv]``. Parameters: those of ``deltanet`` with the output
    gate and ``Hv = num_v_heads`` value heads, plus ``d_model * Hv`` (a_proj) + ``2 Hv`` (A_log, dt_bias). The
    decay ``e^g [B, T, Hv]`` passes through ``decay_probe``.
    """

    description = "gated delta rule: decay + delta-rule writes, short conv, L2-normalised q/k, gated RMSNorm"
    paper = "Yang, Kautz, Hatamizadeh 2024, arXiv 2412.06464"
    Config = GatedDeltaNetConfig

    def __init__(self, d_model: int, **options):
        super().__init__(d_model, **options)
        H = self.n_v_heads
        self.a_proj = nn.Linear(d_model, H, bias=False)
        self.A_log = nn.Parameter(torch.empty(H).uniform_(1, 16).log())
        dt = torch.exp(torch.empty(H).uniform_(math.log(1e-3), math.log(1e-1))).clamp(min=1e-4)
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))  # softplus(dt_bias) = dt
        no_weight_decay(self, "A_log", "dt_bias")  # as flash-linear-attention (fla/layers/gated_deltanet.py)
        self.decay_probe = Probe()

    def value_heads(self, cfg: GatedDeltaNetConfig) -> int:
        """``num_v_heads`` (default ``n_heads``), a multiple of ``n_heads``."""
        Hv = cfg.n_heads if cfg.num_v_heads is None else cfg.num_v_heads
        require(Hv >= cfg.n_heads and Hv % cfg.n_heads == 0,
                f"num_v_heads must be a multiple of n_heads={cfg.n_heads} (each q/k head serves a group of value "
                f"heads); got {cfg.num_v_heads}")
        return Hv

    def decay(self, x: torch.Tensor) -> dict:
        g = -self.A_log.exp() * F.softplus(self.a_proj(x) + self.dt_bias)                # (B, T, Hv) <= 0
        if self.decay_probe.active:
            self.decay_probe(g.exp())
        return {"g": g}

    def expected_num_params(self) -> int:
        return super().expected_num_params() + self.config.d_model * self.n_v_heads + 2 * self.n_v_heads
