"""``atlas``: ATLAS's deep memory, trained at test time by the Omega rule with a Muon-style update."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ...ops.atlas import chunk_atlas, recurrent_atlas
from ...registry import MIXERS
from ..base import resolve_head_dim
from ..conv import ShortConv
from ._polynomial import PolynomialFeatures, feature_dim
from .recurrent import GatedRMSNorm, RecurrentMixer, RecurrentOptions

# the gates' values before training (sigmoid of their biases): memory retention alpha, momentum theta, inner
# learning rate eta, token weight gamma. gatelab's choice: the paper's text gives no initial values.
GATE_INIT = {"alpha": 0.99, "theta": 0.9, "eta": 0.01, "gamma": 0.5}


@dataclass(kw_only=True)
class AtlasConfig(RecurrentOptions):
    """Options of ``atlas``. ``window``: the Omega rule's context c, the last c tokens whose loss each update
    minimises (1: the online, delta-rule-like update). ``degree``: the polynomial feature map's degree p (keys
    and queries of ``head_dim`` h become ``C(h + p, p)`` features). ``ns_steps``: Newton-Schulz iterations on the
    momentum (the paper's Muon update uses 5; 0 is plain momentum gradient descent). ``memory_expand``: the
    memory MLP's hidden width over head_dim. ``residual``: the memory's residual connection
    ``M(u) = a_1 k + MLP(u)``. ``chunk_size``: 1 is the per-token rule; C > 1 takes every gradient of a chunk of
    C tokens at the chunk's start memory (the paper's parallel training form, a different function)."""

    d_model: int
    n_heads: int = 4
    head_dim: int | None = None
    window: int = 8
    degree: int = 2
    ns_steps: int = 5
    memory_expand: int = 1
    residual: bool = True
    use_short_conv: bool = True
    conv_size: int = 4
    chunk_size: int = 16

    RANGES: ClassVar[dict[str, str]] = {**RecurrentOptions.RANGES, "d_model": "[1, inf)", "n_heads": "[1, inf)",
                                        "head_dim": "[1, inf)", "window": "[1, inf)", "degree": "[1, inf)",
                                        "ns_steps": "[0, inf)", "memory_expand": "[1, inf)", "conv_size": "[1, inf)"}


@MIXERS.register("atlas")
class Atlas(RecurrentMixer):
    """ATLAS (Behrouz, Li, Kacham, Daliri, Deng, Zhong, Razaviyayn, Mirrokni 2025, "ATLAS: Learning to Optimally
    Memorize the Context at Test Time", arXiv 2505.23735): per head, a two-layer MLP memory
    ``M(u) = a_1 k + W2 silu(W1 u)`` whose weights are the state, updated at every token by the Omega rule with
    momentum and Newton-Schulz orthogonalisation (the paper's Atlas update)::

        S_t = theta_t S_{t-1} + grad_M sum_{i=t-c+1}^{t} gamma_i ||M(phi(k_i)) - v_i||^2   (at M_{t-1})
        M_t = alpha_t M_{t-1} - eta_t NS_5(S_t),         y_t = M_t(phi(q_t))

    ``phi``: the polynomial feature map (all monomials up to ``degree``, a learnable coefficient per degree,
    ``_polynomial.PolynomialFeatures``). ``alpha`` (retention / weight decay), ``theta`` (momentum), ``eta``
    (learning rate) and ``gamma`` (each token's weight in the window) are per head and input-dependent: sigmoids of
    one linear map of x. The block around the memory follows Titans, which ATLAS builds on: q, k, v projections
    through a short depthwise convolution and SiLU, L2-normalised q and k, and the memory's read normalised per
    head and gated by a linear map of x (silu) before o_proj.

    What was followed: the paper's Omega objective, its Atlas update ``M_t = alpha_t M_{t-1} - eta_t NS-5(S_t)``,
    ``S_t = theta_t S_{t-1} + grad`` (the sign written as descent) and its monomial map ``[x^beta]_{|beta| <= p}``
    (arXiv 2505.23735v1; not checked against an official implementation); Muon's quintic Newton-Schulz
    coefficients. gatelab's choices: SiLU in the memory MLP, the learned initial memory, the gates' initial values
    (``GATE_INIT``), the degree coefficients' start ``1 / sqrt(n!)``, the defaults of window, degree and
    chunk_size. Gradients of the inner loss are written in closed form (``ops/atlas/memory.py``), so training
    differentiates through the whole inner loop. ``chunk_size=1`` is the exact per-token rule; C > 1 is the
    paper's chunk-wise parallel approximation (gradients at the chunk's start).

    Input and output ``[B, T, d_model]``. With ``h = head_dim``, ``K = H h``, ``F = C(h + p, p)``,
    ``D = memory_expand h``: parameters ``3 d K`` (q/k/v_proj) + ``3 K conv_size`` (short conv, no bias)
    + ``4 d H + 4 H`` (gate_proj) + ``p + 1`` (phi's coefficients) + ``H (F D + D h)`` (the initial memory)
    + ``d K`` (g_proj) + ``h`` (o_norm) + ``K d`` (o_proj). State per sequence: the memory and its momentum
    ``2 H (F D + D h)``, the chunk-start memory ``H (F D + D h)`` when chunk_size > 1, the window
    ``H (c - 1)(F + h + 1)`` and the convolution's last inputs.
    """

    description = "ATLAS: MLP memory trained at test time on a sliding window (Omega rule), Muon-style update"
    paper = "Behrouz et al. 2025, arXiv 2505.23735"
    Config = AtlasConfig
    chunk_op, recurrent_op = staticmethod(chunk_atlas), staticmethod(recurrent_atlas)

    def __init__(self, d_model: int, **options):
        super().__init__()
        cfg = self.configure(d_model, options)
        cfg.head_dim = resolve_head_dim(d_model, cfg.n_heads, cfg.head_dim)
        self.config = cfg
        H, h = cfg.n_heads, cfg.head_dim
        self.key_dim, self.features_dim, self.hidden = H * h, feature_dim(h, cfg.degree), cfg.memory_expand * h
        K, Fd, D = self.key_dim, self.features_dim, self.hidden
        self.q_proj, self.k_proj, self.v_proj = (nn.Linear(d_model, K, bias=False) for _ in range(3))
        self.conv = ShortConv(3 * K, cfg.conv_size, bias=False) if cfg.use_short_conv else None
        self.gate_proj = nn.Linear(d_model, 4 * H)
        with torch.no_grad():  # gates in the order alpha, theta, eta, gamma, H heads each
            self.gate_proj.bias.copy_(torch.tensor([math.log(p / (1 - p)) for p in GATE_INIT.values()]
                                                   ).repeat_interleave(H))
        self.phi = PolynomialFeatures(h, cfg.degree)
        self.w1 = nn.Parameter(torch.randn(H, Fd, D) / math.sqrt(Fd))   # the memory before any token
        self.w2 = nn.Parameter(torch.randn(H, D, h) / math.sqrt(D))
        self.g_proj = nn.Linear(d_model, K, bias=False)
        self.o_norm = GatedRMSNorm(h, cfg.norm_eps)
        self.o_proj = nn.Linear(K, d_model, bias=False)

    def features(self, x, conv_state, offset):
        B, T, _ = x.shape
        cfg, H, h = self.config, self.config.n_heads, self.config.head_dim
        qkv = torch.cat([self.q_proj(x), self.k_proj(x), self.v_proj(x)], dim=-1)       # (B, T, 3K)
        qkv, conv_state = self.short_conv(qkv, conv_state)
        q, k, v = (u.view(B, T, H, h) for u in qkv.split(self.key_dim, dim=-1))         # (B, T, H, h)
        q, k = self.phi(F.normalize(q, dim=-1)), self.phi(F.normalize(k, dim=-1))        # (B, T, H, F)
        alpha, theta, eta, gamma = self.gate_proj(x).view(B, T, 4, H).unbind(2)           # (B, T, H) logits
        kw = {"g": F.logsigmoid(alpha), "g_momentum": F.logsigmoid(theta), "beta": torch.sigmoid(eta),
              "gamma": torch.sigmoid(gamma), "w1": self.w1, "w2": self.w2, "window": cfg.window,
              "ns_steps": cfg.ns_steps, "residual": cfg.residual}
        return (q, k, v), kw, self.g_proj(x).view(B, T, H, h), conv_state

    def output(self, o, gate, x):
        return self.o_proj(self.o_norm(o, gate).flatten(2))                              # (B, T, d_model)

    def state_size(self, seq_len: int) -> int:
        c, H, Fd, D = self.config, self.config.n_heads, self.features_dim, self.hidden
        memory = H * (Fd * D + D * c.head_dim)
        window = H * (c.window - 1) * (Fd + c.head_dim + 1)
        return (2 + (c.chunk_size > 1)) * memory + window + self.conv_state_size()

    def expected_num_params(self) -> int:
        c, K, H, Fd, D = self.config, self.key_dim, self.config.n_heads, self.features_dim, self.hidden
        conv = 3 * K * c.conv_size if c.use_short_conv else 0
        return (3 * c.d_model * K + conv + 4 * c.d_model * H + 4 * H + c.degree + 1 + H * (Fd * D + D * c.head_dim)
                + c.d_model * K + c.head_dim + K * c.d_model)
