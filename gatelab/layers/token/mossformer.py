"""``mossformer``: MossFormer's gated single-head attention unit (FLASH-style, convolution-augmented)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ...ops.mossformer import chunk_mossformer_attention
from ...registry import MIXERS
from ..base import TokenMixer, require
from ..conv import ShortConv
from ..norm import ScaleNorm
from ..rope import RotaryEmbedding

ROTARY_DIMS = 32  # MossFormer's RotaryEmbedding(dim=min(32, query_key_dim))


@dataclass(kw_only=True)
class MossFormerConfig:
    """Options of ``mossformer``. The defaults are those of MossFormer's block except ``norm``: the official block
    uses ScaleNorm (``norm='scalenorm'``), gatelab's default is LayerNorm. ``group_size``: the chunk G of quadratic
    attention (256). ``query_key_dim``: the shared Z's width s (128). ``expansion_factor``: the hidden width
    ``e d_model`` split into V and U (4: each ``2 d_model``, what MossFormer's output module takes).
    ``kernel_size``: the depthwise convolution of each projection (17). ``shift_tokens``: shift the first half of
    the channels by one token (on). ``gating``: ``'joint'`` (MossFormer's code) or ``'flash'`` (FLASH's
    ``U * Attn(V)``). ``rope`` on the first ``min(32, s)`` dims of the four query/key maps (on, as MossFormer).
    ``norm``: the input norm of the three FFConvM projections, ``'layernorm'`` (default) or ``'scalenorm'`` (the
    official block's, ``MossformerBlock(norm_type='scalenorm')``: ``g x / max(||x|| / sqrt(width), eps)`` with one
    scalar g). ``n_heads`` is accepted, as every mixer receives it, and unused: the unit has one head."""

    d_model: int
    n_heads: int = 4
    group_size: int = 256
    query_key_dim: int = 128
    expansion_factor: float = 4.0
    kernel_size: int = 17
    shift_tokens: bool = True
    gating: Literal["joint", "flash"] = "joint"
    rope: bool = True
    rope_base: float = 10000.0
    norm: Literal["layernorm", "scalenorm"] = "layernorm"
    norm_eps: float = 1e-5

    RANGES: ClassVar[dict[str, str]] = {"d_model": "[1, inf)", "n_heads": "[1, inf)", "group_size": "[1, 65536]",
                                        "query_key_dim": "[1, inf)", "expansion_factor": "(0, 64]",
                                        "kernel_size": "[1, 1024]", "rope_base": "(1, inf)", "norm_eps": "(0, 1)"}

    def check(self) -> None:
        hidden = int(self.d_model * self.expansion_factor)
        require(hidden >= 2 and hidden % 2 == 0, f"mossformer.expansion_factor={self.expansion_factor} gives a "
                f"hidden width int(d_model * expansion_factor) = {hidden}, which must be even and >= 2 (it splits "
                "into V and U)")
        require(not self.rope or self.query_key_dim % 2 == 0, f"mossformer.query_key_dim={self.query_key_dim} "
                "must be even with rope=True (RoPE rotates pairs of dims); choose an even width or rope=False")
        require(self.rope or self.rope_base == 10000.0, f"mossformer.rope_base={self.rope_base} has no effect "
                "with rope=False; set rope=True or leave rope_base at its default")


class FFConvM(nn.Module):
    """MossFormer's convolution-augmented projection: a norm (LayerNorm or ScaleNorm), Linear (with bias), SiLU,
    then ``z + dwconv(z)`` (its ConvModule; a causal depthwise conv here, 'same' padding in MossFormer's non-causal
    code). Parameters: ``n(d_in) + d_in d_out + d_out + d_out k`` with ``n(d_in)`` = ``2 d_in`` (LayerNorm) or 1
    (ScaleNorm). State: the conv's last ``k - 1`` inputs."""

    def __init__(self, d_in: int, d_out: int, kernel_size: int, norm: str, eps: float):
        super().__init__()
        self.norm = nn.LayerNorm(d_in, eps=eps) if norm == "layernorm" else ScaleNorm(d_in, eps=eps)
        self.proj = nn.Linear(d_in, d_out)
        self.conv = ShortConv(d_out, kernel_size, bias=False)

    def forward(self, x: torch.Tensor, state: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        z = F.silu(self.proj(self.norm(x)))                                               # (B, T, d_out)
        c, state = self.conv(z, state)
        return z + c, state


@dataclass
class MossFormerState:
    """Decoding state: ``offset`` tokens seen; the last token's shifted channels ``[B, 1, ceil(d/2)]``; the three
    convolutions' last inputs; the linear-attention state of the complete groups ``[B, 1, s, E]``; and the current
    group's quad keys, lin keys ``[B, n, 1, s]`` and values ``[B, n, 1, E]`` (n = offset mod G)."""

    offset: int
    shift: torch.Tensor
    convs: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    linear: torch.Tensor
    group: tuple[torch.Tensor, torch.Tensor, torch.Tensor]


@MIXERS.register("mossformer")
class MossFormer(TokenMixer):
    """MossFormer's gated single-head attention unit (Zhao et al. 2023, "MossFormer: Pushing the Performance Limit
    of Monaural Speech Separation using Gated Single-Head Transformer with Convolution-Augmented Joint
    Self-Attentions", arXiv 2302.11824; ``FLASH_ShareA_FFConvM`` of its code in modelscope / ClearerVoice-Studio),
    on FLASH's mixed chunk attention (Hua et al. 2022, arXiv 2202.10447), causal.

    ``x`` (its first ceil(d/2) channels shifted one token later, ``shift_tokens``) feeds two FFConvM projections:
    ``[V, U] = FFConvM(x)`` (``e d_model`` wide) and ``Z = FFConvM(x)`` (s wide). Per-dim scales and offsets of Z
    give ``quad_q, lin_q, quad_k, lin_k`` (gamma ~ N(0, 0.02), beta 0), rotated by RoPE. Attention over groups of
    G tokens: ``Attn(X)_t = sum_{j in t's group, j <= t} relu(quad_q_t . quad_k_j / G)^2 X_j + lin_q_t
    sum_{j in earlier groups} lin_k_j^T X_j / G`` (``gatelab.ops.mossformer``; the causal linear part is FLASH's
    exclusive cumulative sum over groups). Output ``FFConvM(Attn(U) * V * sigmoid(Attn(V) * U))`` (``gating=
    'joint'``, MossFormer's code: both V and U attended, each gating the other) or ``FFConvM(U * Attn(V))``
    (``'flash'``). The block's residual is the model's. Not reproduced: dropout.

    Each FFConvM's input norm: the official block uses ScaleNorm (``norm='scalenorm'``: ``g x / max(||x|| /
    sqrt(width), eps)``, one scalar g); gatelab's default is LayerNorm (``norm='layernorm'``), which differs from it.

    Input and output ``[B, T, d_model]``. With h = ``int(e d_model)`` and n(w) the norm's parameters (``2 w``
    LayerNorm, 1 ScaleNorm): parameters ``(n(d) + d h + h + h k)`` (V/U) ``+ (n(d) + d s + s + s k)`` (Z)
    ``+ 8 s`` (offset-scale) ``+ (n(h / 2) + h d / 2 + d + d k)`` (out).
    Decoding state (``MossFormerState``): the linear state ``s E`` (E = h joint, h / 2 flash), the current
    group's keys and values ``n (2 s + E)``, the conv tails ``(k - 1)(h + s + d)`` and ``ceil(d / 2)``.
    """

    description = "MossFormer: gated single-head FLASH unit, conv-augmented, quadratic in groups + linear across"
    paper = "Zhao et al. 2023, arXiv 2302.11824"
    Config = MossFormerConfig

    def __init__(self, d_model: int, **options):
        super().__init__()
        cfg = self.configure(d_model, options)
        self.config = cfg
        d, s, k = d_model, cfg.query_key_dim, cfg.kernel_size
        self.hidden = int(d * cfg.expansion_factor)
        self.to_hidden = FFConvM(d, self.hidden, k, cfg.norm, cfg.norm_eps)
        self.to_qk = FFConvM(d, s, k, cfg.norm, cfg.norm_eps)
        self.gamma = nn.Parameter(torch.randn(4, s) * 0.02)
        self.beta = nn.Parameter(torch.zeros(4, s))
        self.to_out = FFConvM(self.hidden // 2, d, k, cfg.norm, cfg.norm_eps)
        self.rope = RotaryEmbedding(s, cfg.rope_base, rotary_dims=min(ROTARY_DIMS, s)) if cfg.rope else None
        self.value_dim = self.hidden if cfg.gating == "joint" else self.hidden // 2

    def forward(self, x: torch.Tensor, state: MossFormerState | None = None) -> tuple[torch.Tensor, MossFormerState]:
        """``x [B, T, d_model]`` -> ``y [B, T, d_model]`` and the state after these tokens."""
        c = self.config
        state = self.init_state(x.shape[0]) if state is None else state
        B, T, d = x.shape
        half = (d + 1) // 2
        if c.shift_tokens:       # the first half of the channels one token later (the last one kept)
            past = torch.cat([state.shift.to(x.dtype), x[..., :half]], 1)                # (B, 1 + T, ceil(d/2))
            x = torch.cat([past[:, :T], x[..., half:]], -1)
            shift = past[:, T:]
        else:
            shift = state.shift
        hidden, conv_h = self.to_hidden(x, state.convs[0])                                # (B, T, h)
        z, conv_z = self.to_qk(x, state.convs[1])                                         # (B, T, s)
        v, u = hidden.chunk(2, -1)                                                        # (B, T, h/2) each
        quad_q, lin_q, quad_k, lin_k = (z.unsqueeze(2) * self.gamma + self.beta).unbind(2)   # (B, T, s) each
        if self.rope is not None:
            quad_q, lin_q, quad_k, lin_k = (self.rope(t.unsqueeze(2), state.offset).squeeze(2)
                                            for t in (quad_q, lin_q, quad_k, lin_k))
        values = torch.cat([v, u], -1) if c.gating == "joint" else v                      # (B, T, E)
        attended, linear, group = self._attend(quad_q, quad_k, lin_q, lin_k, values, state)
        if c.gating == "joint":
            att_v, att_u = attended.chunk(2, -1)
            gated = att_u * v * torch.sigmoid(att_v * u)                                  # (B, T, h/2)
        else:
            gated = u * attended
        y, conv_o = self.to_out(gated, state.convs[2])                                    # (B, T, d_model)
        return y, MossFormerState(state.offset + T, shift, (conv_h, conv_z, conv_o), linear, group)

    def _attend(self, quad_q, quad_k, lin_q, lin_k, values, state: MossFormerState):
        """The mixed chunk attention of the new tokens, continuing the current group: its cached keys and values go
        first (with zero queries, outputs dropped) so that groups stay aligned to position 0."""
        G = self.config.group_size
        n = state.group[0].shape[1]
        q_pad = quad_q.new_zeros(quad_q.shape[0], n, 1, quad_q.shape[-1])                  # (B, n, 1, s)
        qq, ql = (torch.cat([q_pad, t.unsqueeze(2)], 1) for t in (quad_q, lin_q))         # (B, n + T, 1, s)
        kq, kl, vv = (torch.cat([old.to(t.dtype), t.unsqueeze(2)], 1)
                      for old, t in zip(state.group, (quad_k, lin_k, values), strict=True))
        o, linear = chunk_mossformer_attention(qq, kq, ql, kl, vv, chunk_size=G, initial_state=state.linear,
                                               output_final_state=True)
        rest = (n + quad_q.shape[1]) % G                                                  # the new current group
        group = tuple(t[:, t.shape[1] - rest:] for t in (kq, kl, vv))
        return o[:, n:, 0], linear, group

    def init_state(self, batch_size: int) -> MossFormerState:
        c, like = self.config, self._param_like()
        d, s, k, E = c.d_model, c.query_key_dim, c.kernel_size, self.value_dim
        convs = tuple(like.new_zeros(batch_size, k - 1, w) for w in (self.hidden, s, d))
        group = (like.new_zeros(batch_size, 0, 1, s), like.new_zeros(batch_size, 0, 1, s),
                 like.new_zeros(batch_size, 0, 1, E))
        return MossFormerState(0, like.new_zeros(batch_size, 1, (d + 1) // 2), convs,
                               like.new_zeros(batch_size, 1, s, E), group)

    def state_size(self, seq_len: int) -> int:
        c = self.config
        d, s, E = c.d_model, c.query_key_dim, self.value_dim
        return (s * E + (seq_len % c.group_size) * (2 * s + E) + (c.kernel_size - 1) * (self.hidden + s + d)
                + (d + 1) // 2)

    def expected_num_params(self) -> int:
        c = self.config
        d, s, k, h = c.d_model, c.query_key_dim, c.kernel_size, self.hidden
        norms = 2 * (2 * d) + 2 * (h // 2) if c.norm == "layernorm" else 3                # n(d) + n(d) + n(h/2)
        return norms + (d * h + h + h * k) + (d * s + s + s * k) + 8 * s + (h // 2 * d + d + d * k)
