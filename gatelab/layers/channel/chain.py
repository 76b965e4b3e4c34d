"""Chain-of-Model layers (Song et al. 2025, "Chain-of-Model Learning for Language Model", arXiv 2505.11820):
the chain-of-linear layer ``ChainLinear`` and the chain-of-representation SwiGLU FFN (key ``chain``).

A hidden state of width D is split into n chains, contiguous groups of D/n channels. In a chain layer, output
chain i reads input chains 1..i only, so the first k chains of every layer's output depend only on the first k
chains of its input: a stack of such layers holds n nested models, the first k chains for each k
(``DecoderLM.submodel(k)``).

From the paper (§3.1 eq. 1, Algorithm 1; §3.2.2, Algorithm 5): ``y = concat_i(W_i x_{<=i} + b_i)`` with one
weight ``W_i [D_y/n, i * D_x/n]`` per output chain, each initialised as an ``nn.Linear`` of that shape (the
block-lower-triangular weight held as its blocks: the module's parameters are exactly the lower-triangular ones);
the FFN replaces SwiGLU's three linears by chain linears over the same chains, d_ff split over the chains.
Our choices: chains of equal width (the paper's hyper-parameter ``C = {c_1..c_n}`` also allows unequal ratios,
e.g. {8, 24}; its experiments mostly use equal ones, which it notes train slightly faster); the forward pass
runs the paper's per-chain form (its Algorithm 1; ``chain_linear_ref`` is the dense block-lower-triangular
product it must equal; the paper's own fast path, a block-sparse Triton kernel, is not reproduced).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ...registry import CHANNEL_MIXERS
from ..base import require
from .base import ChannelMixer
from .mlp import default_swiglu_width


def chain_linear_params(in_features: int, out_features: int, n_chains: int) -> int:
    """Weights of a ``ChainLinear``: ``sum_i (i * in/n) * (out/n) = in * out * (n + 1) / (2n)``."""
    return in_features * out_features * (n_chains + 1) // (2 * n_chains)


class ChainLinear(nn.Module):
    """A linear layer whose output chain i reads input chains 1..i only (the paper's Chain-of-Linear).

    ``x [..., in_features] -> y [..., out_features]``; both widths split into ``n_chains`` equal chains. The weight
    is block lower triangular over chains and is held as its blocks: ``weights[i] [out/n, (i + 1) * in/n]`` (the
    weight of output chain i over the input prefix of i + 1 chains), plus ``bias [out_features]`` if ``bias``.
    Parameters: ``in * out * (n + 1) / (2n)`` (+ ``out`` with bias); ``n_chains = 1`` is ``nn.Linear``.
    Block i is initialised as ``nn.Linear((i + 1) * in/n, out/n)`` initialises its weight and bias.
    The first k chains of the layer are ``weights[:k]`` and ``bias[:k * out/n]``: a ChainLinear of k chains.
    """

    def __init__(self, in_features: int, out_features: int, n_chains: int, bias: bool = False):
        super().__init__()
        for name, width in (("in_features", in_features), ("out_features", out_features)):
            require(width % n_chains == 0, f"ChainLinear: {name}={width} is not divisible by n_chains={n_chains}")
        self.in_features, self.out_features, self.n_chains = in_features, out_features, n_chains
        c_in, c_out = in_features // n_chains, out_features // n_chains
        self.weights = nn.ParameterList(nn.Parameter(torch.empty(c_out, (i + 1) * c_in)) for i in range(n_chains))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for i, w in enumerate(self.weights):
            nn.init.kaiming_uniform_(w, a=math.sqrt(5))  # nn.Linear's init for fan_in = (i + 1) * in/n
            if self.bias is not None:
                bound = w.shape[1] ** -0.5
                nn.init.uniform_(self.bias[i * w.shape[0]:(i + 1) * w.shape[0]], -bound, bound)

    def dense_weight(self) -> torch.Tensor:
        """The block-lower-triangular weight ``[out_features, in_features]`` (zeros above the diagonal blocks)."""
        return torch.cat([F.pad(w, (0, self.in_features - w.shape[1])) for w in self.weights])  # (out, in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``y_i = W_i x_{<=i} (+ b_i)`` chain by chain (eq. 1): the zero blocks are never multiplied, so this
        takes ``(n + 1) / (2n)`` of a dense layer's FLOPs (on CPU, forward and backward, 0.63-0.75x the time of an
        nn.Linear of the same shape for n = 2..8, where the dense ``chain_linear_ref`` takes about 1x)."""
        y = torch.cat([F.linear(x[..., :w.shape[1]], w) for w in self.weights], dim=-1)  # (..., out)
        return y if self.bias is None else y + self.bias

    def expected_num_params(self) -> int:
        return chain_linear_params(self.in_features, self.out_features, self.n_chains) + (
            self.out_features if self.bias is not None else 0)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, n_chains={self.n_chains}, " \
               f"bias={self.bias is not None}"


def chain_linear_ref(layer: ChainLinear, x: torch.Tensor) -> torch.Tensor:
    """The definition, densely: ``y = W x + b`` with W the block-lower-triangular ``layer.dense_weight()``.
    ``x [..., in] -> [..., out]``."""
    return F.linear(x, layer.dense_weight(), layer.bias)                                  # (..., out)


@dataclass(kw_only=True)
class ChainFFNConfig:
    """Options of ``chain``: ``n_chains`` (a DecoderLM sets it from ``model.chains``) must divide d_model and
    d_ff. d_ff None means SwiGLU's default width ``default_swiglu_width(d_model)`` rounded up to a multiple of
    n_chains."""

    d_model: int
    d_ff: int | None = None
    n_chains: int = 1

    RANGES: ClassVar[dict[str, str]] = {"d_model": "[1, inf)", "d_ff": "[1, inf)", "n_chains": "[1, inf)"}

    def check(self) -> None:
        require(self.d_model % self.n_chains == 0, f"chain: d_model={self.d_model} is not divisible by n_chains="
                f"{self.n_chains}; choose n_chains (model.chains) dividing d_model")
        require(self.d_ff is None or self.d_ff % self.n_chains == 0, f"chain: d_ff={self.d_ff} is not divisible "
                f"by n_chains={self.n_chains}; choose a d_ff that is a multiple of n_chains (or 0 for the default)")


@CHANNEL_MIXERS.register("chain")
class ChainFFN(ChannelMixer):
    """The chain-of-representation FFN: SwiGLU with chain linears, ``w2(silu(w1 x) * w3 x)`` where w1, w3
    ``[d_model -> d_ff]`` and w2 ``[d_ff -> d_model]`` are ``ChainLinear`` over ``n_chains`` chains (Song et al.
    2025, arXiv 2505.11820, §3.2.2 and Algorithm 5). Hidden chain i of d_ff reads input chains <= i, output chain i
    reads hidden chains <= i, so output chain i depends on input chains <= i only.

    Input and output ``[B, T, d_model]``. Parameters: ``3 * d_model * d_ff * (n + 1) / (2n)`` (no biases; only the
    block-lower-triangular weights exist); n_chains = 1 is SwiGLU.
    """

    description = "chain-of-representation SwiGLU: block-lower-triangular weights over chains (nested sub-models)"
    paper = "Song et al. 2025, arXiv 2505.11820"
    Config = ChainFFNConfig

    def __init__(self, d_model: int, d_ff: int | None = None, **options):
        super().__init__()
        cfg = self.configure(d_model, {**options, "d_ff": d_ff})
        n = cfg.n_chains
        cfg.d_ff = cfg.d_ff or -(-default_swiglu_width(d_model) // n) * n
        self.config, self.d_ff, self.d_ff_multiple = cfg, cfg.d_ff, cfg.n_chains
        self.w1 = ChainLinear(d_model, cfg.d_ff, n)
        self.w3 = ChainLinear(d_model, cfg.d_ff, n)
        self.w2 = ChainLinear(cfg.d_ff, d_model, n)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))

    def expected_num_params(self) -> int:
        c = self.config
        return 3 * chain_linear_params(c.d_model, c.d_ff, c.n_chains)
