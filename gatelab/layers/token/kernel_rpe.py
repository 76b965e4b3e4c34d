"""``kernel_rpe``: kernelized (Performer) attention with a learned relative positional encoding, by FFT."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ...ops.kernel_rpe import fft_kernel_rpe, quadratic_kernel_rpe
from ...registry import MIXERS
from ..base import TokenMixer, no_weight_decay, require, resolve_head_dim
from .kv_cache import KVCache
from .random_features import gaussian_orthogonal, positive_features


@dataclass(kw_only=True)
class KernelRPEConfig:
    """Options of ``kernel_rpe``. ``n_features``: random features per head (m; default Performer's
    ``int(D ln D)``, at least 1). ``orthogonal``: Performer's orthogonal random features (False: i.i.d. Gaussian).
    ``feature_redraw``: in training, draw new features after every that many forward calls that start a sequence
    (Performer's ``feature_redraw_interval``; the seeded features serve the first that many; 0, the default:
    never, the features drawn at construction from ``feature_seed`` are kept). ``feature_eps``: added to every
    feature (Performer's stabiliser). ``max_distance``: lags at or beyond it share one bias (clipped relative
    positions). ``qk_norm``: L2-normalise q and k per head
    before the features (kernel ``exp(q^ . k^)``) instead of scaling each by ``D^-1/4`` (kernel
    ``exp(q . k / sqrt(D))``). ``mode``: the form of a whole-sequence forward,
    ``quadratic`` (the default: the explicit ``[T, T]`` weighted score matrix per head, ``quadratic_kernel_rpe``,
    ``B H T^2`` memory and ``T^2 (M + V)`` work per head) or ``fft`` (the paper's O(T log T) method,
    ``fft_kernel_rpe``: it transforms M (V + 1) channels of length T per head, so it holds ``B H M (V + 1) T``
    values and pays off only at long sequences: at d_model 64 with one head, T = 128 and batch 64, a training step
    of the layer took 54 s by FFT and 0.25 s by the matrix on one CPU thread; both are the same function); tokens
    after a cache always use the quadratic form. ``fft_block`` (``mode='fft'``): tokens per diagonal block of the
    causal FFT product, the smallest FFT half-length; a power of two."""

    d_model: int
    n_heads: int = 4
    head_dim: int | None = None
    n_features: int | None = None
    orthogonal: bool = True
    feature_redraw: int = 0
    feature_seed: int = 0
    feature_eps: float = 1e-6
    max_distance: int = 512
    qk_norm: bool = False
    mode: Literal["fft", "quadratic"] = "quadratic"
    fft_block: int = 64

    RANGES: ClassVar[dict[str, str]] = {"d_model": "[1, inf)", "n_heads": "[1, inf)", "head_dim": "[1, inf)",
                                        "n_features": "[1, inf)", "feature_redraw": "[0, inf)",
                                        "feature_seed": "[0, 4294967295]", "feature_eps": "(0, 0.01]",
                                        "max_distance": "[1, inf)", "fft_block": "[1, 65536]"}

    def check(self) -> None:
        require(self.fft_block & (self.fft_block - 1) == 0, f"kernel_rpe.fft_block={self.fft_block} is not "
                "supported: the FFT block must be a power of two (1, 2, 4, ..., 65536)")
        require(self.mode == "fft" or self.fft_block == 64, f"kernel_rpe.fft_block={self.fft_block} has no effect "
                "with mode='quadratic'; set mode='fft' or leave fft_block at its default (64)")


@MIXERS.register("kernel_rpe")
class KernelRPE(TokenMixer):
    """Kernelized attention with relative positional encoding (Luo et al. 2021, "Stable, Fast and Accurate:
    Kernelized Attention with Relative Positional Encoding", NeurIPS, arXiv 2106.12566), causal:

    ``o_i = sum_{j<=i} e^{b_{i-j}} phi(q_i).phi(k_j) v_j / sum_{j<=i} e^{b_{i-j}} phi(q_i).phi(k_j)``

    with Performer's positive random features ``phi`` (``random_features``; an unbiased estimate of the softmax
    kernel) and a learned bias per head and lag ``b [H, max_distance + 1]`` (lags clipped at ``max_distance``;
    zeros at first, where the layer is Performer's linear attention). The weights ``e^{b_{i-j}}`` form a Toeplitz
    matrix, so a whole sequence can be computed by FFT as the paper does (``mode='fft'``:
    ``gatelab.ops.kernel_rpe.fft_kernel_rpe``, exactly causal); by default it is computed by the explicit matrix
    (``mode='quadratic'``), cheaper at the lengths this library trains at; tokens after a cache by the quadratic
    form. Decoding keeps every past ``phi(k_j)`` and ``v_j`` (the weights
    depend on the distance, so the state grows with the sequence, as attention's KV cache).

    Choices of ours: the relative bias is clipped at ``max_distance`` and initialised to zero; keys get no
    data-dependent stabiliser (see ``positive_features``); features are fixed by default (``feature_redraw``
    redraws them in training as Performer does). Input and output ``[B, T, d_model]``. Parameters:
    ``4 d_model H D`` (q/k/v/o_proj) ``+ H (max_distance + 1)`` (the bias, exempt from weight decay); the random
    projection ``[m, D]`` and the count of calls since it was drawn are buffers (saved in the state dict)."""

    description = "Kernelized attention with relative positional encoding: Performer features, Toeplitz RPE by FFT"
    paper = "Luo et al. 2021, arXiv 2106.12566"
    Config = KernelRPEConfig

    def __init__(self, d_model: int, **options):
        super().__init__()
        cfg = self.configure(d_model, options)
        cfg.head_dim = resolve_head_dim(d_model, cfg.n_heads, cfg.head_dim)
        if cfg.n_features is None:
            cfg.n_features = max(1, int(cfg.head_dim * math.log(cfg.head_dim)))
        self.config = cfg
        width = cfg.n_heads * cfg.head_dim
        self.q_proj, self.k_proj, self.v_proj = (nn.Linear(d_model, width, bias=False) for _ in range(3))
        self.o_proj = nn.Linear(width, d_model, bias=False)
        self.rel_bias = nn.Parameter(torch.zeros(cfg.n_heads, cfg.max_distance + 1))
        no_weight_decay(self, "rel_bias")
        generator = torch.Generator().manual_seed(cfg.feature_seed)
        self.register_buffer("projection", gaussian_orthogonal(cfg.n_features, cfg.head_dim, cfg.orthogonal,
                                                               generator))
        self.register_buffer("calls_since_redraw", torch.zeros((), dtype=torch.int64))

    def _maybe_redraw(self) -> None:
        """In training with ``feature_redraw = n``: each set of features serves n forward calls (the seeded one
        included), then the next call draws new ones. The projection and the count are buffers, so a model
        loaded from its state dict continues as the saved one would have (with the same global RNG state)."""
        c = self.config
        if not (self.training and c.feature_redraw):
            return
        if self.calls_since_redraw >= c.feature_redraw:
            fresh = gaussian_orthogonal(c.n_features, c.head_dim, c.orthogonal)     # from the global RNG
            self.projection.copy_(fresh.to(self.projection))
            self.calls_since_redraw.zero_()
        self.calls_since_redraw += 1

    def lag_bias(self, n_lags: int) -> torch.Tensor:
        """The log weight of each lag ``0 .. n_lags - 1`` per head ``[H, n_lags]`` (clipped at max_distance)."""
        lags = torch.arange(n_lags, device=self.rel_bias.device).clamp(max=self.config.max_distance)
        return self.rel_bias[:, lags]

    def forward(self, x: torch.Tensor, state: KVCache | None = None) -> tuple[torch.Tensor, KVCache]:
        """``x [B, T, d_model]`` -> ``y [B, T, d_model]`` and the cache of key features and values."""
        c = self.config
        B, T, _ = x.shape
        if state is None:
            self._maybe_redraw()
        q = self.q_proj(x).view(B, T, c.n_heads, c.head_dim)                          # (B, T, H, D)
        k = self.k_proj(x).view(B, T, c.n_heads, c.head_dim)
        v = self.v_proj(x).view(B, T, c.n_heads, c.head_dim)
        if c.qk_norm:
            q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        else:
            q, k = q * c.head_dim ** -0.25, k * c.head_dim ** -0.25
        phi_q = positive_features(q, self.projection, c.feature_eps, is_query=True)    # (B, T, H, m)
        phi_k = positive_features(k, self.projection, c.feature_eps, is_query=False)
        if state is None:
            cache = KVCache.wrap(phi_k, v, T)
            op = fft_kernel_rpe if c.mode == "fft" else quadratic_kernel_rpe
            o = op(phi_q, phi_k, v, bias=self.lag_bias(T), block_size=c.fft_block)
        else:
            cache = state.append(phi_k, v)
            o = quadratic_kernel_rpe(phi_q, cache.k, cache.v, bias=self.lag_bias(cache.length))
        return self.o_proj(o.flatten(2)), cache                                        # (B, T, d_model)

    def init_state(self, batch_size: int) -> KVCache:
        c, like = self.config, self._param_like()
        return KVCache.wrap(like.new_zeros(batch_size, 0, c.n_heads, c.n_features),
                            like.new_zeros(batch_size, 0, c.n_heads, c.head_dim), 0)

    def state_size(self, seq_len: int) -> int:
        """Every past key's features and value: ``T H (m + D)``."""
        c = self.config
        return seq_len * c.n_heads * (c.n_features + c.head_dim)

    def expected_num_params(self) -> int:
        c = self.config
        return 4 * c.d_model * c.n_heads * c.head_dim + c.n_heads * (c.max_distance + 1)
