"""Informer's ProbSparse self-attention (``probsparse``) as a token mixer, causal or not."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import nn

from ...config import ConfigError
from ...ops.probsparse import probsparse_attention
from ...registry import MIXERS
from ..base import TokenMixer, require, resolve_head_dim
from ..rope import RotaryEmbedding
from .kv_cache import KVCache


@dataclass(kw_only=True)
class ProbSparseConfig:
    """Options of ``probsparse``. ``factor`` is Informer's c (``--factor``, default 5): each query samples
    ``c ceil(ln n)`` keys and ``c ceil(ln n)`` queries are active. ``causal`` (default) masks later keys, as
    Informer's decoder self-attention; ``causal=False`` is its encoder self-attention. ``selection`` picks the
    active queries: ``'online'`` (the default when causal: decodable) or ``'informer'`` (the top-u of the whole
    sequence, the only rule without causal). ``mean_over``: the measurement divides the sampled sum by the number
    of ``'keys'`` (Informer's code) or of ``'samples'``. ``causal_lazy``: a lazy query's causal output is the
    cumulative ``'mean'`` of the values (default) or Informer's cumulative ``'sum'``. ``rope`` (default on, as
    gatelab's attention; Informer adds positional embeddings to its input instead: ``rope=False``). ``bias`` on
    the four projections (Informer's ``nn.Linear`` have it; off by default, as gatelab's attention).
    ``sample_seed`` fixes the sampled keys of the online rule and of evaluation (see ``ProbSparseAttention``)."""

    d_model: int
    n_heads: int = 4
    head_dim: int | None = None
    factor: int = 5
    causal: bool = True
    selection: Literal["auto", "online", "informer"] = "auto"
    mean_over: Literal["keys", "samples"] = "keys"
    causal_lazy: Literal["mean", "sum"] = "mean"
    rope: bool = True
    rope_base: float = 10000.0
    bias: bool = False
    sample_seed: int = 0

    RANGES: ClassVar[dict[str, str]] = {"d_model": "[1, inf)", "n_heads": "[1, inf)", "head_dim": "[1, inf)",
                                        "factor": "[1, inf)", "rope_base": "(1, inf)",
                                        "sample_seed": "[0, 4294967295]"}

    def check(self) -> None:
        require(self.causal or self.selection != "online", "probsparse.selection='online' needs causal=True (it "
                "is the causal rule); with causal=False use selection='informer' or 'auto'")
        require(self.causal or self.causal_lazy == "mean", f"probsparse.causal_lazy={self.causal_lazy!r} has no "
                "effect with causal=False (lazy queries get the mean of the values); leave it at 'mean'")
        require(self.rope or self.rope_base == 10000.0, f"probsparse.rope_base={self.rope_base} has no effect "
                "with rope=False; set rope=True or leave rope_base at its default")


@dataclass
class ProbSparseState:
    """The decoding state of the online rule: the KV cache and the measurement of every query seen ``[B, H, t]``
    (a new query is ranked against them)."""

    cache: KVCache
    measures: torch.Tensor


@MIXERS.register("probsparse")
class ProbSparseAttention(TokenMixer):
    """ProbSparse self-attention (Zhou et al. 2021, "Informer", arXiv 2012.07436; zhouhaoyi/Informer2020
    ``models/attn.py``, ``ProbAttention`` inside ``AttentionLayer``).

    Each query q_i is measured against ``U = c ceil(ln n)`` keys sampled uniformly with replacement,
    ``M(q_i) = max_j q_i k_j - (sum_j q_i k_j) / n`` over the samples (n keys, as Informer's code; the sample mean
    with ``mean_over='samples'``); the ``u = c ceil(ln n)`` queries with the largest M (the active ones) get
    softmax attention, the others (lazy) the mean of the values (``causal=False``) or, causal, the cumulative mean
    (Informer's code takes the cumulative sum, which its authors call a simplification of the mean:
    ``causal_lazy='sum'``). Input and output ``[B, T, d_model]``; q, k, v ``[B, T, H, D]``. Parameters:
    ``3 * d_model * H * D`` (q/k/v_proj) ``+ H * D * d_model`` (o_proj), plus ``3 * H * D + d_model`` with
    ``bias``.

    The active queries of Informer's rule (``selection='informer'``) are the top-u of the whole sequence, so in
    the causal form query t's output depends on later tokens through the choice (and its measurement samples
    later keys, as in Informer's code): it is no decoding rule, it has no state and ``init_state`` refuses. The
    default causal rule, ``'online'``, is ours: query t is measured against keys sampled from its own ``t + 1``
    and is active when it is among the top ``u(t + 1)`` of the ``t + 1`` queries so far. It depends on nothing
    after t, so prefix + rest == whole == steps; at the last position it is Informer's choice for that query.
    With random inputs about ``c ln^2 L / 2`` queries are active (about 140 of 720 and 200 of 2880 at c = 5)
    against Informer's ``c ceil(ln L)`` (35, 40); at worst (a measurement rising along the sequence) every one is.

    Sampling: Informer draws ``torch.randint`` at every forward. Here the informer rule draws a new seed from
    the global RNG at every forward in training (so ``torch.manual_seed`` reproduces a run) and uses
    ``sample_seed`` in evaluation (the same keys at every call); the online rule always uses ``sample_seed``
    (a decoding step must draw what the forward drew at that position). The samples of a position depend only on
    (seed, position, number of keys): see ``gatelab.ops.probsparse.sampling``.

    ``causal=False`` takes ``lengths [B]`` of right-padded sequences: pads are never sampled, selected or
    attended to. Informer's decoder reshapes the heads' output with ``mix=True`` (a transpose that moves values
    across positions); that is not reproduced. Informer's ``ProbAttention`` applies no dropout.
    """

    description = "Informer's ProbSparse attention: top-u queries by a sampled measurement, the rest the mean of V"
    paper = "Zhou et al. 2021, arXiv 2012.07436"
    directions = "both"
    Config = ProbSparseConfig

    def __init__(self, d_model: int, **options):
        super().__init__()
        cfg = self.configure(d_model, options)
        if cfg.selection == "auto":
            cfg.selection = "online" if cfg.causal else "informer"
        cfg.head_dim = resolve_head_dim(d_model, cfg.n_heads, cfg.head_dim)
        self.config = cfg
        H, D = cfg.n_heads, cfg.head_dim
        self.q_proj = nn.Linear(d_model, H * D, bias=cfg.bias)
        self.k_proj = nn.Linear(d_model, H * D, bias=cfg.bias)
        self.v_proj = nn.Linear(d_model, H * D, bias=cfg.bias)
        self.o_proj = nn.Linear(H * D, d_model, bias=cfg.bias)
        self.rope = RotaryEmbedding(D, cfg.rope_base) if cfg.rope else None

    @property
    def decodable(self) -> bool:
        """Whether this form has a decoding state (causal with the online rule)."""
        return self.config.causal and self.config.selection == "online"

    def _no_state(self) -> ConfigError:
        c = self.config
        why = ("is not causal" if not c.causal else "selects the top-u queries of the whole sequence, so a "
               "decoding step cannot know its choice")
        return ConfigError(f"probsparse with causal={c.causal}, selection={c.selection!r} {why}: it has no "
                           "decoding state; use causal=True, selection='online' to decode")

    def _seed(self) -> int:
        if self.config.selection == "informer" and self.training:
            return int(torch.randint(0, 1 << 32, ()))
        return self.config.sample_seed

    def forward(self, x: torch.Tensor, state: ProbSparseState | None = None,
                lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, ProbSparseState | None]:
        """``x [B, T, d_model]`` -> ``y [B, T, d_model]`` and the new state (None unless decodable). ``lengths
        [B]``: the real lengths of right-padded sequences (a causal output never sees later padding)."""
        c = self.config
        if state is not None and not self.decodable:
            raise self._no_state()
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, c.n_heads, c.head_dim)                              # (B, T, H, D)
        k = self.k_proj(x).view(B, T, c.n_heads, c.head_dim)
        v = self.v_proj(x).view(B, T, c.n_heads, c.head_dim)
        offset = 0 if state is None else state.cache.offset
        if self.rope is not None:
            q, k = self.rope(q, offset), self.rope(k, offset)
        cache, past = None, None
        if self.decodable:
            cache = KVCache.wrap(k, v, T) if state is None else state.cache.append(k, v)
            k, v, past = cache.k, cache.v, None if state is None else state.measures  # (B, Tk, H, D)
        o, measures = probsparse_attention(q, k, v, factor=c.factor, causal=c.causal, selection=c.selection,
                                           mean_over=c.mean_over, lazy=c.causal_lazy, seed=self._seed(),
                                           lengths=lengths, past_measures=past)
        y = self.o_proj(o.flatten(2))                                                     # (B, T, d_model)
        return y, ProbSparseState(cache, measures) if self.decodable else None

    def init_state(self, batch_size: int) -> ProbSparseState:
        if not self.decodable:
            raise self._no_state()
        c, like = self.config, self._param_like()
        return ProbSparseState(KVCache.empty(like, batch_size, c.n_heads, c.head_dim),
                               like.new_zeros(batch_size, c.n_heads, 0))

    def state_size(self, seq_len: int) -> int:
        """Keys and values (``2 * seq_len * H * D``) and, decoding, one measurement per query and head."""
        c = self.config
        return seq_len * c.n_heads * (2 * c.head_dim + (1 if self.decodable else 0))

    def expected_num_params(self) -> int:
        c = self.config
        width = c.n_heads * c.head_dim
        return 4 * c.d_model * width + (3 * width + c.d_model if c.bias else 0)
