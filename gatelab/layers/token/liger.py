"""Liger attention (``liger``): sliding-window softmax attention mixed with a gated recurrent branch that reuses
the attention projections, adding no parameters."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F

from ...ops.gla import chunk_gla, recurrent_gla
from ...registry import MIXERS
from ..base import Probe, require
from .attention import KVCache, SlidingWindowAttention, SlidingWindowConfig


@dataclass
class LigerState:
    """The window's KV cache and the recurrent branch's state ``[B, H, D, D]`` (None before the first token)."""

    kv: KVCache
    h: torch.Tensor | None


@dataclass(kw_only=True)
class LigerConfig(SlidingWindowConfig):
    """Options of ``liger`` (the paper's code: window 64, an even 0.5 / 0.5 mix, gate normaliser 16).
    ``mode`` is the form of the recurrent branch in ``forward``; ``step`` always uses the recurrence."""

    mix: float = 0.5
    gate_logit_normalizer: float = 16.0
    mode: Literal["chunk", "recurrent"] = "chunk"
    chunk_size: int = 64

    RANGES: ClassVar[dict[str, str]] = {**SlidingWindowConfig.RANGES, "mix": "[0, 1]",
                                        "gate_logit_normalizer": "(0, inf)", "chunk_size": "[1, inf)"}


@MIXERS.register("liger")
class LigerAttention(SlidingWindowAttention):
    """Liger attention (Lan et al. 2025, arXiv 2503.01496).

    ``o = mix * SWA(q_rope, k_rope, v) + (1 - mix) * GLA(softmax(q), softmax(k), v, alpha)`` then o_proj, where
    the forget gate is pooled from the key projection (its own size, so the pooling is the identity):
    ``log alpha = logsigmoid(x W_K) / 16``. The recurrent branch has no RoPE and scale 1, and needs
    ``n_kv_heads == n_heads``. Parameters: exactly those of ``attn``, so a trained ``attn`` checkpoint loads.
    The forget gates pass through ``forget_gate_probe``.
    """

    description = "Liger: sliding-window attention + GLA branch gated by the pooled key projection (no new params)"
    paper = "Lan et al. 2025, arXiv 2503.01496"
    Config = LigerConfig

    def __init__(self, d_model: int, **options):
        super().__init__(d_model, **options)
        cfg = self.config
        require(cfg.n_kv_heads == cfg.n_heads, f"liger's recurrent branch needs n_kv_heads == n_heads; got "
                f"{cfg.n_kv_heads} and {cfg.n_heads}")
        self.forget_gate_probe = Probe()

    def _mix(self, x: torch.Tensor, state: LigerState | None, op) -> tuple[torch.Tensor, LigerState]:
        cfg = self.config
        q, k, v = self.project(x)                                                        # (B, T, H, D)
        o_swa, kv = self.attend(q, k, v, None if state is None else state.kv)
        g = F.logsigmoid(k) / cfg.gate_logit_normalizer                                  # (B, T, H, D)
        if self.forget_gate_probe.active:
            self.forget_gate_probe(g.exp())
        o_rec, h = op(q.softmax(-1), k.softmax(-1), v, g=g, scale=1.0, output_final_state=True,
                      initial_state=None if state is None else state.h, chunk_size=cfg.chunk_size)
        o = cfg.mix * o_swa + (1 - cfg.mix) * o_rec                                      # (B, T, H, D)
        return self.o_proj(o.flatten(2)), LigerState(kv, h)

    def forward(self, x: torch.Tensor, state: LigerState | None = None) -> tuple[torch.Tensor, LigerState]:
        return self._mix(x, state, chunk_gla if self.config.mode == "chunk" else recurrent_gla)

    def step(self, x: torch.Tensor, state: LigerState | None) -> tuple[torch.Tensor, LigerState]:
        return self._mix(x, state, recurrent_gla)

    def init_state(self, batch_size: int) -> LigerState:
        return LigerState(super().init_state(batch_size), None)

    def state_size(self, seq_len: int) -> int:
        return super().state_size(seq_len) + self.config.n_heads * self.config.head_dim**2
