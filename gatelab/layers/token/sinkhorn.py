"""``sinkhorn``: Sinkformer's doubly stochastic attention (bidirectional only)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ...registry import MIXERS
from ..base import TokenMixer, resolve_head_dim
from ..rope import RotaryEmbedding


@dataclass(kw_only=True)
class SinkhornConfig:
    """Options of ``sinkhorn``. ``n_iters``: Sinkhorn iterations, alternating row and column normalisation
    (Sinkformers' ``max_iter``: 1 is exactly softmax attention; its standalone attention uses 3); ``eps``: the
    entropic regularisation (Sinkformers' 1). ``rope``: rotary positions on q and k (gatelab's attention has them;
    Sinkformers' ViT adds learned positions to its inputs instead)."""

    d_model: int
    n_heads: int = 4
    head_dim: int | None = None
    n_iters: int = 3
    eps: float = 1.0
    rope: bool = True
    rope_base: float = 10000.0

    RANGES: ClassVar[dict[str, str]] = {"d_model": "[1, inf)", "n_heads": "[1, inf)", "head_dim": "[1, inf)",
                                        "n_iters": "[1, inf)", "eps": "(0, inf)", "rope_base": "(1, inf)"}


def sinkhorn_attention(scores: torch.Tensor, n_iters: int, eps: float, real: torch.Tensor | None = None
                       ) -> torch.Tensor:
    """Sinkformers' attention matrix (Sander et al. 2022; michaelsdr/sinkformers): log-domain Sinkhorn on
    ``scores [B, H, T, T]`` with uniform marginals ``1/n`` over the ``n`` real positions (``real [B, T]`` bool,
    None: all), u (rows) updated on even iterations and v (columns) on odd ones, starting from zero; returns
    ``n * exp((scores + u + v) / eps)``, 0 wherever a row or column is padding. One iteration is the softmax over
    keys. Runs every iteration (Sinkformers also stop once u moves by less than 1e-12)."""
    B, H, T, _ = scores.shape
    real = torch.ones(B, T, dtype=torch.bool, device=scores.device) if real is None else real
    both = real[:, None, :, None] & real[:, None, None, :]                              # (B, 1, T, T)
    floor = torch.finfo(scores.dtype).min / 4
    n = real.sum(-1).to(scores.dtype)[:, None, None, None]                              # (B, 1, 1, 1)
    log_marginal = -n.log()
    u = scores.new_zeros(B, H, T, 1)
    v = scores.new_zeros(B, H, 1, T)
    for i in range(n_iters):
        z = ((scores + u + v) / eps).masked_fill(~both, floor)                           # (B, H, T, T)
        if i % 2 == 0:
            u = eps * (log_marginal - torch.logsumexp(z, dim=-1, keepdim=True)) + u
        else:
            v = eps * (log_marginal - torch.logsumexp(z, dim=-2, keepdim=True)) + v
    plan = torch.exp(((scores + u + v) / eps).masked_fill(~both, floor))                 # (B, H, T, T)
    return plan * n


@MIXERS.register("sinkhorn")
class SinkhornAttention(TokenMixer):
    """Doubly stochastic attention (Sander et al. 2022, "Sinkformers: Transformers with Doubly Stochastic
    Attention", AISTATS, arXiv 2110.11773): softmax attention whose ``exp(q k^T / sqrt(D))`` kernel is normalised
    by Sinkhorn's iterations over rows and columns (``sinkhorn_attention``), so every query's weights and every
    key's received weights sum to one. Bidirectional only (a column normalisation reads every query): a
    bidirectional model builds it as it is and a causal one refuses it.

    Input and output ``[B, T, d_model]``; ``forward(x, state=None, lengths=None)``: padded positions (beyond
    ``lengths [B]``) are neither queries nor keys of the real ones. Parameters: ``4 d_model H D`` (q, k, v, o)."""

    description = "Sinkformer: attention normalised over rows and columns by Sinkhorn iterations (bidirectional)"
    paper = "Sander et al. 2022, arXiv 2110.11773"
    Config = SinkhornConfig
    directions = "bidirectional"

    def __init__(self, d_model: int, **options):
        super().__init__()
        cfg = self.configure(d_model, options)
        cfg.head_dim = resolve_head_dim(d_model, cfg.n_heads, cfg.head_dim)
        self.config = cfg
        inner = cfg.n_heads * cfg.head_dim
        self.q_proj, self.k_proj, self.v_proj = (nn.Linear(d_model, inner, bias=False) for _ in range(3))
        self.o_proj = nn.Linear(inner, d_model, bias=False)
        self.rope = RotaryEmbedding(cfg.head_dim, cfg.rope_base) if cfg.rope else None

    def forward(self, x: torch.Tensor, state: None = None, lengths: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, None]:
        if state is not None:
            raise ValueError("sinkhorn attention reads the whole sequence at once and has no decoding state")
        cfg = self.config
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, cfg.n_heads, cfg.head_dim)                           # (B, T, H, D)
        k = self.k_proj(x).view(B, T, cfg.n_heads, cfg.head_dim)
        v = self.v_proj(x).view(B, T, cfg.n_heads, cfg.head_dim)
        if self.rope is not None:
            q, k = self.rope(q, 0), self.rope(k, 0)
        scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(cfg.head_dim)          # (B, H, T, T)
        real = None if lengths is None else torch.arange(T, device=x.device) < lengths.to(x.device)[:, None]
        attn = sinkhorn_attention(scores, cfg.n_iters, cfg.eps, real)                     # (B, H, T, T)
        o = torch.einsum("bhqk,bkhd->bqhd", attn, v)                                      # (B, T, H, D)
        return self.o_proj(o.flatten(2)), None

    def step(self, x: torch.Tensor, state: None, **layer_inputs) -> tuple[torch.Tensor, None]:
        raise ValueError("sinkhorn attention cannot decode token by token: it reads the whole sequence")

    def init_state(self, batch_size: int) -> None:
        return None

    def state_size(self, seq_len: int) -> int:
        """The keys and values it reads: ``2 T H D``."""
        return 2 * seq_len * self.config.n_heads * self.config.head_dim

    def expected_num_params(self) -> int:
        c = self.config
        return 4 * c.d_model * c.n_heads * c.head_dim
