"""ViG's bidirectional gated linear attention with its 2-D gating locality injection (``vig``)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ...config import ConfigError
from ...ops.gla import chunk_gla, recurrent_gla
from ...registry import MIXERS
from ..base import Probe, TokenMixer
from ._flip import flip_padded
from .gla import head_split
from .recurrent import RecurrentOptions


@dataclass(kw_only=True)
class ViGConfig(RecurrentOptions):
    """Options of ``vig`` (defaults from the official code, hustvl/ViG ``classification/config.py``).

    grid: side of the square token map (T = grid * grid); 0 takes it from T, which must then be a perfect square.
    conv_activation: SiLU after the depthwise convolution (official default; ViG-S and ViG-B configs turn it off).
    conv_bias: a bias in the depthwise convolution (official default: none).
    output_activation: SiLU on the gated mix before ``o_proj`` (official default: off; the ViG-T config turns it on).
    """

    d_model: int
    n_heads: int = 4
    expand_k: float = 0.5
    gate_low_rank_dim: int = 16
    gate_logit_normalizer: float = 16.0
    grid: int = 0
    conv_activation: bool = True
    conv_bias: bool = False
    output_activation: bool = False
    norm_eps: float = 1e-6

    RANGES: ClassVar[dict[str, str]] = {**RecurrentOptions.RANGES, "d_model": "[1, inf)", "n_heads": "[1, inf)",
                                        "expand_k": "(0, inf)", "gate_low_rank_dim": "[1, inf)",
                                        "gate_logit_normalizer": "(0, inf)", "grid": "[0, inf)"}


@MIXERS.register("vig")
class ViGBiGLA(TokenMixer):
    """ViG's BiGLA block (Liao et al. 2024, arXiv 2405.18425; AAAI 2025; official code hustvl/ViG).

    ``x [B, T, d_model]`` is read as a ``grid x grid`` map of tokens in row-major order. With ``K = d_model *
    expand_k`` and ``V = d_model`` (the locality branch is normalised per head, so V must equal d_model), per head:

        u = SiLU(DWConv3x3(x))                                   local 2-D features [B, T, d_model]
        q, k, v = u W_qkv                                        one projection, shared by both directions
        log a_fwd, log a_bwd = logsigmoid(u W1 [W2_fwd | W2_bwd] + b) / tau     tau = gate_logit_normalizer = 16
        S_fwd_t = diag(a_fwd_t) S_fwd_{t-1} + k_t^T v_t          (forward scan, t = 0 .. T-1)
        S_bwd_t = diag(a_bwd_t) S_bwd_{t+1} + k_t^T v_t          (reverse scan, t = T-1 .. 0)
        o_t = (q_t S_fwd_t + q_t S_bwd_t) / 2                    q scaled by (K/H) ** -0.5
        g = sigmoid(u W_g + b_g)
        y = o_proj(g * RMSNorm(o) + (1 - g) * RMSNorm(u))        2-D gating locality injection

    Direction-wise gating: the decay gates ``a = sigmoid(.) ** (1/16)`` are per direction (they share the low-rank
    down-projection W1 and have their own up-projections and biases); q, k, v, the locality gate g and o_proj are
    shared. Both directions count token t itself. The reverse scan is the forward op on the sequence flipped
    within each length (``flip_padded``), run as a second half of one batch of 2B, in the configured ``mode``
    (``chunk_gla`` or ``recurrent_gla``). Right-padded sequences (``lengths``) have their pads zeroed before the
    convolution and never enter the reverse state. The official code also lets a class token skip the
    convolution; here there is none (its configs pool by the mean).

    Parameters: ``9 d`` (+ ``d`` with conv_bias) (depthwise conv) + ``d (2K + d)`` (qkv_proj)
    + ``d r + 2 r K + 2 K`` (gk_proj, rank r) + ``d^2 + d`` (g_proj) + ``2 d / H`` (o_norm, l_norm)
    + ``d^2`` (o_proj). The decay gates ``a`` ``[2, B, T, H, K/H]`` (forward, reverse) pass through
    ``forget_gate_probe`` and the locality gate ``g`` ``[B, T, H, d/H]`` through ``locality_gate_probe``.
    """

    description = "ViG bidirectional gated linear attention: direction-wise decay gates, 2-D gated locality"
    paper = "Liao et al. 2024, arXiv 2405.18425"
    directions = "bidirectional"
    Config = ViGConfig

    def __init__(self, d_model: int, **options: Any):
        super().__init__()
        cfg = self.configure(d_model, options)
        self.config = cfg
        self.key_dim = int(d_model * cfg.expand_k)
        self.head_k = head_split(d_model, self.key_dim, cfg.n_heads, "key dim d_model*expand_k")
        self.head_v = head_split(d_model, d_model, cfg.n_heads, "value dim d_model")
        self.conv = nn.Conv2d(d_model, d_model, 3, padding=1, groups=d_model, bias=cfg.conv_bias)
        self.qkv_proj = nn.Linear(d_model, 2 * self.key_dim + d_model, bias=False)
        self.gk_proj = nn.Sequential(nn.Linear(d_model, cfg.gate_low_rank_dim, bias=False),
                                     nn.Linear(cfg.gate_low_rank_dim, 2 * self.key_dim, bias=True))
        self.g_proj = nn.Linear(d_model, d_model, bias=True)
        self.o_norm = nn.RMSNorm(self.head_v, eps=cfg.norm_eps)
        self.l_norm = nn.RMSNorm(self.head_v, eps=cfg.norm_eps)
        self.o_proj = nn.Linear(d_model, d_model, bias=False)
        self.forget_gate_probe, self.locality_gate_probe = Probe(), Probe()
        for w in (self.conv.weight, self.qkv_proj.weight, self.gk_proj[0].weight, self.gk_proj[1].weight,
                  self.g_proj.weight, self.o_proj.weight):
            nn.init.xavier_uniform_(w, gain=2**-2.5)
        nn.init.zeros_(self.gk_proj[1].bias)
        nn.init.zeros_(self.g_proj.bias)

    def side(self, seq_len: int) -> int:
        """The side of the square token map for ``seq_len`` tokens, or a ConfigError naming ``vig.grid``."""
        grid = self.config.grid
        side = grid or math.isqrt(seq_len)
        if side * side != seq_len:
            if grid:
                raise ConfigError(f"vig.grid={grid} reads the tokens as a {grid}x{grid} map, so T must be "
                                  f"{grid * grid}; got T={seq_len}")
            raise ConfigError(f"vig.grid=0 reads the tokens as a square map, so T must be a perfect square; got "
                              f"T={seq_len}: give sequences of a square length or set vig.grid to the map's side")
        return side

    def local_features(self, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        """``u = act(DWConv3x3(x))`` on the 2-D token map, ``[B, T, d_model]``; pads are read as zeros."""
        B, T, d = x.shape
        side = self.side(T)
        if lengths is not None:
            real = torch.arange(T, device=x.device) < lengths.to(x.device).view(B, 1)        # (B, T)
            x = x.masked_fill(~real.unsqueeze(-1), 0.0)
        u = self.conv(x.transpose(1, 2).reshape(B, d, side, side))                          # (B, d, side, side)
        u = u.flatten(2).transpose(1, 2)                                                    # (B, T, d)
        return F.silu(u) if self.config.conv_activation else u

    def scan(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g_fwd: torch.Tensor, g_bwd: torch.Tensor,
             lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The forward and reverse GLA outputs ``[B, T, H, V]`` at the original positions.

        q, k, g_fwd, g_bwd: ``[B, T, H, K]``; v: ``[B, T, H, V]``; g_* are log decay gates (<= 0). The reverse
        output at t is ``q_t S_bwd_t`` with ``S_bwd_t = diag(exp(g_bwd_t)) S_bwd_{t+1} + k_t^T v_t`` over the real
        tokens of each sequence: the forward op on the sequence flipped within its length, flipped back.
        """
        def directions(fwd: torch.Tensor, bwd: torch.Tensor) -> torch.Tensor:
            return torch.cat([fwd, flip_padded(bwd, lengths)], dim=0)                       # (2B, T, H, D)

        op = chunk_gla if self.config.mode == "chunk" else recurrent_gla
        o, _ = op(directions(q, q), directions(k, k), directions(v, v), g=directions(g_fwd, g_bwd),
                  chunk_size=self.config.chunk_size)                                        # (2B, T, H, V)
        o_fwd, o_bwd = o.chunk(2, dim=0)                                                    # (B, T, H, V) each
        return o_fwd, flip_padded(o_bwd, lengths)

    def forward(self, x: torch.Tensor, state: Any = None, lengths: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, None]:
        """``y [B, T, d_model]`` from ``x [B, T, d_model]``; ``lengths [B]`` for right-padded sequences."""
        if state is not None:
            raise ValueError("vig is bidirectional: it reads the whole sequence at once and has no decoding state")
        B, T, _ = x.shape
        H, Dk, Dv = self.config.n_heads, self.head_k, self.head_v
        u = self.local_features(x, lengths)                                                 # (B, T, d)
        q, k, v = self.qkv_proj(u).split([self.key_dim, self.key_dim, H * Dv], dim=-1)
        gk = F.logsigmoid(self.gk_proj(u)) / self.config.gate_logit_normalizer             # (B, T, 2K)
        g_fwd, g_bwd = (g.reshape(B, T, H, Dk) for g in gk.chunk(2, dim=-1))               # (B, T, H, K/H)
        if self.forget_gate_probe.active:
            self.forget_gate_probe(torch.stack([g_fwd, g_bwd]).exp())                      # (2, B, T, H, K/H)
        o_fwd, o_bwd = self.scan(q.view(B, T, H, Dk), k.view(B, T, H, Dk), v.view(B, T, H, Dv), g_fwd, g_bwd,
                                 lengths)                                                   # (B, T, H, V/H)
        g = torch.sigmoid(self.g_proj(u)).view(B, T, H, Dv)                                 # (B, T, H, V/H)
        if self.locality_gate_probe.active:
            self.locality_gate_probe(g)
        y = g * self.o_norm((o_fwd + o_bwd) / 2) + (1 - g) * self.l_norm(u.view(B, T, H, Dv))
        if self.config.output_activation:
            y = F.silu(y)
        return self.o_proj(y.flatten(2)), None                                              # (B, T, d_model)

    def step(self, x: torch.Tensor, state: Any, **layer_inputs: Any) -> tuple[torch.Tensor, Any]:
        raise ValueError("vig is bidirectional: it cannot decode token by token")

    def init_state(self, batch_size: int) -> None:
        return None

    def state_size(self, seq_len: int) -> int:
        """Floats held by the two scans (one ``[H, K/H, V/H]`` state per direction), whatever the length."""
        return 2 * self.config.n_heads * self.head_k * self.head_v

    def expected_num_params(self) -> int:
        d, r, K, H = self.config.d_model, self.config.gate_low_rank_dim, self.key_dim, self.config.n_heads
        conv = 9 * d + (d if self.config.conv_bias else 0)
        return conv + d * (2 * K + d) + d * r + 2 * r * K + 2 * K + d * d + d + 2 * (d // H) + d * d
