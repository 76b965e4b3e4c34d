"""Gated Linear Attention token mixer (``gla``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch.nn.functional as F
from torch import nn

from ...ops.gla import chunk_gla, recurrent_gla
from ...registry import MIXERS
from ..base import Probe, require
from .recurrent import GatedRMSNorm, RecurrentMixer, RecurrentOptions


@dataclass(kw_only=True)
class GLAConfig(RecurrentOptions):
    """Options of ``gla`` (defaults from the paper and flash-linear-attention)."""

    d_model: int
    n_heads: int = 4
    expand_k: float = 0.5
    expand_v: float = 1.0
    gate_low_rank_dim: int = 16
    gate_logit_normalizer: float = 16.0

    RANGES: ClassVar[dict[str, str]] = {**RecurrentOptions.RANGES, "d_model": "[1, inf)", "n_heads": "[1, inf)",
                                        "expand_k": "(0, inf)", "expand_v": "(0, inf)", "gate_low_rank_dim": "[1, inf)",
                                        "gate_logit_normalizer": "(0, inf)"}


def expanded_dims(cfg) -> tuple[int, int, int, int]:
    """``(K, V, K / H, V / H)`` from ``d_model * expand_k`` and ``d_model * expand_v`` over ``n_heads``."""
    K, V = int(cfg.d_model * cfg.expand_k), int(cfg.d_model * cfg.expand_v)
    return (K, V, head_split(cfg.d_model, K, cfg.n_heads, "key dim d_model*expand_k"),
            head_split(cfg.d_model, V, cfg.n_heads, "value dim d_model*expand_v"))


def head_split(d_model: int, width: int, n_heads: int, what: str) -> int:
    """Per-head size of a ``width``-wide projection, or a ConfigError that says what does not divide."""
    require(n_heads >= 1, f"n_heads must be >= 1; got {n_heads}")
    require(width >= n_heads and width % n_heads == 0,
            f"{what}={width} (from d_model={d_model}) must be a positive multiple of n_heads={n_heads}")
    return width // n_heads


@MIXERS.register("gla")
class GatedLinearAttention(RecurrentMixer):
    """Gated Linear Attention (Yang et al. 2023, arXiv 2312.06635).

    ``S_t = diag(alpha_t) S_{t-1} + k_t^T v_t``, ``o_t = q_t S_t`` per head, with the low-rank forget gate
    ``log alpha_t = logsigmoid(x W1 W2 + b) / 16``; then a per-head RMSNorm, the swish output gate and o_proj:
    ``y = o_proj(RMSNorm(o) * silu(x W_g))``. Key dim ``K = d_model * expand_k``, value dim
    ``V = d_model * expand_v``, both split over heads. The state is ``[B, H, K/H, V/H]``.

    Parameters: ``2 * d_model * K`` (q_proj, k_proj) + ``2 * d_model * V`` (v_proj, g_proj)
    + ``d_model * r + r * K + K`` (gk_proj, rank r) + ``V / H`` (o_norm) + ``V * d_model`` (o_proj).
    The forget gates ``alpha_t`` ``[B, T, H, K/H]`` pass through ``forget_gate_probe`` and the output gate
    ``silu(x W_g)`` ``[B, T, H, V/H]`` through ``output_gate_probe``.
    """

    description = "gated linear attention: per-channel low-rank forget gate, chunkwise training"
    paper = "Yang et al. 2023, arXiv 2312.06635"
    Config = GLAConfig
    chunk_op, recurrent_op = staticmethod(chunk_gla), staticmethod(recurrent_gla)

    def __init__(self, d_model: int, **options):
        super().__init__()
        cfg = self.configure(d_model, options)
        self.key_dim, self.value_dim, self.head_k, self.head_v = expanded_dims(cfg)
        self.config = cfg
        self.q_proj = nn.Linear(d_model, self.key_dim, bias=False)
        self.k_proj = nn.Linear(d_model, self.key_dim, bias=False)
        self.v_proj = nn.Linear(d_model, self.value_dim, bias=False)
        self.g_proj = nn.Linear(d_model, self.value_dim, bias=False)
        self.gk_proj = nn.Sequential(nn.Linear(d_model, cfg.gate_low_rank_dim, bias=False),
                                     nn.Linear(cfg.gate_low_rank_dim, self.key_dim, bias=True))
        self.o_norm = GatedRMSNorm(self.head_v, cfg.norm_eps)
        self.o_proj = nn.Linear(self.value_dim, d_model, bias=False)
        self.forget_gate_probe, self.output_gate_probe = Probe(), Probe()
        for w in (self.q_proj.weight, self.k_proj.weight, self.gk_proj[0].weight, self.gk_proj[1].weight):
            nn.init.xavier_uniform_(w, gain=2**-2.5)

    def features(self, x, conv_state, offset):
        B, T, _ = x.shape
        H = self.config.n_heads
        q = self.q_proj(x).view(B, T, H, self.head_k)                                    # (B, T, H, K/H)
        k = self.k_proj(x).view(B, T, H, self.head_k)
        v = self.v_proj(x).view(B, T, H, self.head_v)                                    # (B, T, H, V/H)
        gk = F.logsigmoid(self.gk_proj(x)).view(B, T, H, self.head_k) / self.config.gate_logit_normalizer
        if self.forget_gate_probe.active:
            self.forget_gate_probe(gk.exp())
        return (q, k, v), {"g": gk}, self.g_proj(x).view(B, T, H, self.head_v), None

    def output(self, o, gate, x):
        if self.output_gate_probe.active:
            self.output_gate_probe(F.silu(gate))
        return self.o_proj(self.o_norm(o, gate).flatten(2))                              # (B, T, d_model)

    def state_size(self, seq_len: int) -> int:
        return self.config.n_heads * self.head_k * self.head_v

    def expected_num_params(self) -> int:
        d, r, K, V = self.config.d_model, self.config.gate_low_rank_dim, self.key_dim, self.value_dim
        return 2 * d * K + 2 * d * V + d * r + r * K + K + self.head_v + V * d
