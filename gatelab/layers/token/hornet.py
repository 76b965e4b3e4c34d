"""``hornet``: HorNet's recursive gated convolution g^nConv as a causal 1-D token mixer."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ...registry import MIXERS
from ..base import TokenMixer, require
from ..conv import ShortConv


@dataclass(kw_only=True)
class HorNetConfig:
    """Options of ``hornet``. ``order``: n, the number of gated interactions (HorNet's stages use 2, 3, 4, 5;
    d_model must be divisible by ``2^(n-1)``). ``kernel_size``: the depthwise convolution's taps, all on the past
    (HorNet's 7x7). ``scale``: s, the factor on the convolution's output (HorNet's 1/3). ``n_heads`` is accepted,
    as every mixer receives it, and unused."""

    d_model: int
    n_heads: int = 1
    order: int = 3
    kernel_size: int = 7
    scale: float = 1.0 / 3.0

    RANGES: ClassVar[dict[str, str]] = {"d_model": "[1, inf)", "n_heads": "[1, inf)", "order": "[1, inf)",
                                        "kernel_size": "[1, 1024]", "scale": "(0, inf)"}


@MIXERS.register("hornet")
class HorNet(TokenMixer):
    """g^nConv, the recursive gated convolution of HorNet (Rao et al. 2022, "HorNet: Efficient High-Order Spatial
    Interactions with Recursive Gated Convolutions", arXiv 2207.14284), as the official ``gnconv``
    (raoyongming/HorNet) with its 2-D convolutions made 1-D and causal:

    widths ``C_k = C / 2^(n-1-k)`` for k = 0..n-1 (``C/2^(n-1), ..., C/2, C``);
    ``[p_0, q] = proj_in(x)`` (C -> 2C, split ``C_0`` / ``ΣC_k``);
    ``[q_0, ..., q_{n-1}] = s * dwconv(q)`` (a causal depthwise convolution over time, split by the widths);
    ``p_1 = p_0 ⊙ q_0``, ``p_{k+1} = pw_k(p_k) ⊙ q_k`` (pw_k: C_{k-1} -> C_k, doubling the width);
    ``y = proj_out(p_n)``. Each output is a polynomial of degree n + 1 in the inputs of the last ``kernel_size``
    tokens: the n-th order interactions HorNet is named for (the p_0 factor is position-wise).

    Not offered: the global-filter variant (``GlobalLocalFilter``, an FFT over a whole 2-D map, not causal).

    Input and output ``[B, T, d_model]``; state: the convolution's last ``kernel_size - 1`` inputs
    ``[B, kernel_size - 1, ΣC_k]``. Parameters (every projection and the convolution with a bias, as the code):
    ``2C^2 + 2C`` (proj_in) + ``(k + 1) ΣC_k`` (dwconv) + ``Σ_{k<n-1} (C_k C_{k+1} + C_{k+1})`` (pws) +
    ``C^2 + C`` (proj_out)."""

    description = "HorNet g^nConv: recursive gated causal depthwise convolution, order-n interactions"
    paper = "Rao et al. 2022, arXiv 2207.14284"
    Config = HorNetConfig

    def __init__(self, d_model: int, **options):
        super().__init__()
        cfg = self.configure(d_model, options)
        require(d_model % 2 ** (cfg.order - 1) == 0, f"hornet: d_model={d_model} is not divisible by "
                f"2^(order-1)={2 ** (cfg.order - 1)} (order={cfg.order}); choose an order with 2^(order-1) "
                "dividing d_model")
        self.config = cfg
        self.dims = [d_model // 2 ** (cfg.order - 1 - k) for k in range(cfg.order)]     # C/2^(n-1), ..., C
        self.proj_in = nn.Linear(d_model, 2 * d_model)
        self.dwconv = ShortConv(sum(self.dims), cfg.kernel_size)
        self.pws = nn.ModuleList(nn.Linear(a, b) for a, b in zip(self.dims[:-1], self.dims[1:], strict=True))
        self.proj_out = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        p, q = self.proj_in(x).split([self.dims[0], sum(self.dims)], -1)             # (B, T, C_0), (B, T, ΣC_k)
        q, state = self.dwconv(q, state)
        gates = (q * self.config.scale).split(self.dims, -1)                         # (B, T, C_k) each
        p = p * gates[0]                                                              # (B, T, C_0)
        for pw, gate in zip(self.pws, gates[1:], strict=True):
            p = pw(p) * gate                                                          # (B, T, C_k)
        return self.proj_out(p), state

    def init_state(self, batch_size: int) -> torch.Tensor:
        return self.dwconv.init_state(batch_size)

    def state_size(self, seq_len: int) -> int:
        return sum(self.dims) * min(seq_len, self.config.kernel_size - 1)

    def expected_num_params(self) -> int:
        C, k, dims = self.config.d_model, self.config.kernel_size, self.dims
        pws = sum(a * b + b for a, b in zip(dims[:-1], dims[1:], strict=True))
        return 2 * C * C + 2 * C + (k + 1) * sum(dims) + pws + C * C + C
