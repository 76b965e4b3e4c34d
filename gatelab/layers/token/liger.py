"""Liger attention (``liger``): sliding-window softmax attention mixed with a gated recurrent branch that reuses
the attention projections, adding no parameters."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F

from ...ops.gla import chunk_gla, recurrent_gla
from ...ops.simple_gla import chunk_simple_gla, recurrent_simple_gla
from ...registry import MIXERS
from ..base import Probe
from .attention import KVCache, SlidingWindowAttention, SlidingWindowConfig

# keeps the ungated branch's normaliser away from zero (as ``linear_attn``)
NORM_EPS = 1e-6


@dataclass
class LigerState:
    """The window's KV cache (None with ``mix == 0``) and the recurrent branch's state ``[B, H, D, D]``
    (``[B, H, D, D + 1]`` for ``recurrence='linear'``; None before the first token and with ``mix == 1``)."""

    kv: KVCache | None
    h: torch.Tensor | None


@dataclass(kw_only=True)
class LigerConfig(SlidingWindowConfig):
    """Options of ``liger`` (the paper's code: window 64, an even 0.5 / 0.5 mix, gate normaliser 16).
    ``mix`` weighs the window branch (1 - mix the recurrent one); 0 drops the window branch and its KV cache (the
    paper's gated recurrence alone), 1 drops the recurrent branch (sliding-window attention). ``recurrence``:
    ``gla``, the paper's gated recurrence with the forget gate pooled from the key projection; ``linear``, the
    ungated baseline: the same softmax feature map without a gate, normalised as linear attention (Katharopoulos
    et al. 2020, arXiv 2006.16236). ``mode`` is the form of the recurrent branch in ``forward``; ``step`` always
    uses the recurrence."""

    mix: float = 0.5
    gate_logit_normalizer: float = 16.0
    recurrence: Literal["gla", "linear"] = "gla"
    mode: Literal["chunk", "recurrent"] = "chunk"
    chunk_size: int = 64

    RANGES: ClassVar[dict[str, str]] = {**SlidingWindowConfig.RANGES, "mix": "[0, 1]",
                                        "gate_logit_normalizer": "(0, inf)", "chunk_size": "[1, inf)"}


@MIXERS.register("liger")
class LigerAttention(SlidingWindowAttention):
    """Liger attention (Lan et al. 2025, arXiv 2503.01496).

    ``o = mix * SWA(q_rope, k_rope, v) + (1 - mix) * GLA(softmax(q), softmax(k), v, alpha)`` then o_proj, where
    the forget gate is pooled from the key projection (its own size, so the pooling is the identity):
    ``log alpha = logsigmoid(x W_K) / 16``. The recurrent branch has no RoPE and scale 1. With grouped-query
    attention (``n_kv_heads < n_heads``) the recurrent branch repeats each kv head's key, value and gate over its
    group of query heads, as the paper's code does (``repeat_kv``), so its state is ``[B, n_heads, D, D]``.
    Parameters: exactly those of ``attn``, so a trained ``attn`` checkpoint loads. The forget gates pass through
    ``forget_gate_probe``.
    """

    description = "Liger: sliding-window attention + GLA branch gated by the pooled key projection (no new params)"
    paper = "Lan et al. 2025, arXiv 2503.01496"
    Config = LigerConfig

    def __init__(self, d_model: int, **options):
        super().__init__(d_model, **options)
        self.forget_gate_probe = Probe()

    def _recurrent(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, h: torch.Tensor | None,
                   step: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """The recurrent branch on q ``[B, T, H, D]`` and k, v ``[B, T, Hkv, D]``: output ``[B, T, H, D]`` and
        the new state."""
        cfg = self.config
        groups = cfg.n_heads // cfg.n_kv_heads
        k, v = (t.repeat_interleave(groups, dim=2) for t in (k, v))                      # (B, T, H, D)
        recurrent = step or cfg.mode == "recurrent"
        if cfg.recurrence == "linear":
            v1 = torch.cat([v, torch.ones_like(v[..., :1])], dim=-1)                     # (B, T, H, D + 1)
            op = recurrent_simple_gla if recurrent else chunk_simple_gla
            o, h = op(q.softmax(-1), k.softmax(-1), v1, scale=1.0, initial_state=h, output_final_state=True,
                      chunk_size=cfg.chunk_size)
            return o[..., :-1] / (o[..., -1:] + NORM_EPS), h                             # (B, T, H, D)
        g = F.logsigmoid(k) / cfg.gate_logit_normalizer                                  # (B, T, H, D)
        if self.forget_gate_probe.active:
            self.forget_gate_probe(g.exp())
        op = recurrent_gla if recurrent else chunk_gla
        return op(q.softmax(-1), k.softmax(-1), v, g=g, scale=1.0, initial_state=h, output_final_state=True,
                  chunk_size=cfg.chunk_size)

    def _mix(self, x: torch.Tensor, state: LigerState | None, step: bool) -> tuple[torch.Tensor, LigerState]:
        mix = self.config.mix
        q, k, v = self.project(x)                                                        # (B, T, H|Hkv, D)
        o, kv, h = 0.0, None, None
        if mix > 0:
            o_swa, kv = self.attend(q, k, v, None if state is None else state.kv)        # (B, T, H, D)
            o = mix * o_swa
        if mix < 1:
            o_rec, h = self._recurrent(q, k, v, None if state is None else state.h, step)
            o = o + (1 - mix) * o_rec                                                    # (B, T, H, D)
        return self.o_proj(o.flatten(2)), LigerState(kv, h)

    def forward(self, x: torch.Tensor, state: LigerState | None = None) -> tuple[torch.Tensor, LigerState]:
        return self._mix(x, state, step=False)

    def step(self, x: torch.Tensor, state: LigerState | None) -> tuple[torch.Tensor, LigerState]:
        return self._mix(x, state, step=True)

    def init_state(self, batch_size: int) -> LigerState:
        return LigerState(super().init_state(batch_size) if self.config.mix > 0 else None, None)

    def state_size(self, seq_len: int) -> int:
        cfg = self.config
        window = super().state_size(seq_len) if cfg.mix > 0 else 0
        recurrent = cfg.n_heads * cfg.head_dim * (cfg.head_dim + (cfg.recurrence == "linear")) if cfg.mix < 1 else 0
        return window + recurrent
