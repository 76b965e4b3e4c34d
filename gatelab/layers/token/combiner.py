"""``combiner``: Combiner's causal full attention in factorised form (Fixed, Axial, Logsparse)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import nn

from ...ops.combiner import combiner_attention
from ...registry import MIXERS
from ..base import TokenMixer, require, resolve_head_dim
from ..rope import RotaryEmbedding

DEFAULT_BLOCK = 32


@dataclass(kw_only=True)
class CombinerConfig:
    """Options of ``combiner``. ``variant``: ``'fixed'`` (default), ``'axial'`` or ``'logsparse'`` (see
    ``Combiner``). ``block_size``: the block (fixed) or row (axial) length L, default 32 (``sqrt T`` is the
    optimum, 32 at T = 1024); logsparse has no block and refuses it. ``rope`` (default on, as gatelab's attention;
    Combiner's code adds positional embeddings to the input instead: ``rope=False``)."""

    d_model: int
    n_heads: int = 4
    head_dim: int | None = None
    variant: Literal["fixed", "axial", "logsparse"] = "fixed"
    block_size: int | None = None
    rope: bool = True
    rope_base: float = 10000.0

    RANGES: ClassVar[dict[str, str]] = {"d_model": "[1, inf)", "n_heads": "[1, inf)", "head_dim": "[1, inf)",
                                        "block_size": "[1, 65536]", "rope_base": "(1, inf)"}

    def check(self) -> None:
        require(self.variant != "logsparse" or self.block_size is None, f"combiner.block_size={self.block_size} "
                "has no effect with variant='logsparse' (its spans are the powers of two); leave it unset or use "
                "variant='fixed' or 'axial'")
        require(self.rope or self.rope_base == 10000.0, f"combiner.rope_base={self.rope_base} has no effect "
                "with rope=False; set rope=True or leave rope_base at its default")
        if self.rope and (self.head_dim is not None or self.d_model % self.n_heads == 0):
            D = self.head_dim if self.head_dim is not None else self.d_model // self.n_heads
            given = "" if self.head_dim is not None else " (d_model / n_heads)"
            require(D % 2 == 0, f"combiner.head_dim={D}{given} must be even with combiner.rope=True (RoPE rotates "
                    "pairs of dims); choose an even head_dim (or n_heads) or rope=False")


@dataclass
class CombinerState:
    """The decoding state: the queries, keys and values of every token seen, ``[B, t, H, D]`` each (after RoPE).
    A region's summary max-pools its queries and keys, so the past queries are kept too."""

    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor

    @property
    def offset(self) -> int:
        return self.k.shape[1]


@MIXERS.register("combiner")
class Combiner(TokenMixer):
    """Combiner (Ren et al. 2021, "Combiner: Full Attention Transformer with Sparse Computation Cost", arXiv
    2107.05768; google-research/google-research ``combiner/jax/model/layer.py``), causal.

    Each query attends directly to a set of positions and to the rest of its past through one summary per region,
    in one softmax: ``p(j | i)`` for a direct j, ``p(R | i) ∝ exp(q_i . k_R / sqrt D)`` for a region R, whose
    tokens get ``p(R | i) q(j | R)`` with the local expectation ``q(j | R) = softmax_{j in R}(q_R . k_j / sqrt
    D)``. Every earlier position has a nonzero probability (full attention) and the rows sum to 1. The summary of
    a region (``q_R``, ``k_R`` and the value ``sum_j q(j | R) v_j``), per variant, as the official code's causal
    layers:

    - ``fixed`` (Combiner-Fixed, ``_SelfAttSqrtn``): blocks of L; a query attends directly to its block's
      positions up to itself, and to every earlier block as a region with ``q_R``, ``k_R`` the max-pool of the
      block's queries and keys. ``O(T (L + T/L))``.
    - ``axial`` (Combiner-Axial, ``_SelfAttAxialRowmajor``): rows of L; directly the row up to itself, and every
      earlier row as a region summarised at the query's column c: ``q_R``, ``k_R`` the query and key of the row's
      token in column c (the row attention's output at that token is the summary value). The official code then
      passes the summary through a projection, residual and LayerNorm before it becomes ``k_R`` (its TF code's
      ``row_summary='none'`` does not); that parametric summary is not offered. ``O(T (L + T/L))``.
    - ``logsparse`` (Combiner-Logsparse, ``_SelfAttLogn``): directly only itself; for each set bit l of i, the
      ``2^l`` positions just before i's ``2^l``-aligned span as a region (so at most ``log2 T`` regions cover
      the past), summarised by max-pool. ``O(T log T)``.

    Not reproduced: Combiner-Mixture (``_AxialMixtureAtt``) and the official code's attention dropout.

    Input and output ``[B, T, d_model]``; q, k, v ``[B, T, H, D]``. Parameters: ``3 d_model H D`` (q/k/v_proj) +
    ``H D d_model`` (o_proj), no biases (as the official code's dense layers). Decoding state: the summaries need
    the past queries, keys and values (a region summarised by a later query's column, or a block not yet
    complete), so the state is a cache of all three, ``3 t H D`` floats after t tokens; a step recomputes the
    attention of the whole cached sequence and keeps the new positions (exact, not incremental).
    """

    description = "Combiner: full causal attention factorised into direct positions and region summaries"
    paper = "Ren et al. 2021, arXiv 2107.05768"
    Config = CombinerConfig

    def __init__(self, d_model: int, **options):
        super().__init__()
        cfg = self.configure(d_model, options)
        cfg.head_dim = resolve_head_dim(d_model, cfg.n_heads, cfg.head_dim)
        if cfg.variant != "logsparse" and cfg.block_size is None:
            cfg.block_size = DEFAULT_BLOCK
        self.config = cfg
        H, D = cfg.n_heads, cfg.head_dim
        self.q_proj = nn.Linear(d_model, H * D, bias=False)
        self.k_proj = nn.Linear(d_model, H * D, bias=False)
        self.v_proj = nn.Linear(d_model, H * D, bias=False)
        self.o_proj = nn.Linear(H * D, d_model, bias=False)
        self.rope = RotaryEmbedding(D, cfg.rope_base) if cfg.rope else None

    def forward(self, x: torch.Tensor, state: CombinerState | None = None) -> tuple[torch.Tensor, CombinerState]:
        """``x [B, T, d_model]`` -> ``y [B, T, d_model]`` and the state after these tokens."""
        c = self.config
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, c.n_heads, c.head_dim)                              # (B, T, H, D)
        k = self.k_proj(x).view(B, T, c.n_heads, c.head_dim)
        v = self.v_proj(x).view(B, T, c.n_heads, c.head_dim)
        offset = 0 if state is None else state.offset
        if self.rope is not None:
            q, k = self.rope(q, offset), self.rope(k, offset)
        if state is not None:
            q, k, v = (torch.cat([old, new], 1) for old, new in ((state.q, q), (state.k, k), (state.v, v)))
        o = combiner_attention(q, k, v, variant=c.variant, block_size=c.block_size or 1)[:, offset:]
        return self.o_proj(o.flatten(2)), CombinerState(q, k, v)                         # (B, T, d_model)

    def init_state(self, batch_size: int) -> CombinerState:
        c, like = self.config, self._param_like()
        empty = like.new_zeros(batch_size, 0, c.n_heads, c.head_dim)
        return CombinerState(empty, empty.clone(), empty.clone())

    def state_size(self, seq_len: int) -> int:
        """Queries, keys and values of every token: ``3 seq_len H D``."""
        return 3 * seq_len * self.config.n_heads * self.config.head_dim

    def expected_num_params(self) -> int:
        c = self.config
        return 4 * c.d_model * c.n_heads * c.head_dim
