"""Normalisation layers by name, whole-width or chain-wise."""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ConfigError

NORMS = ("rmsnorm", "layernorm")


def build_norm(name: str, dim: int, eps: float = 1e-5, chains: int = 1) -> nn.Module:
    """``"rmsnorm"`` (Zhang & Sennrich 2019; weight only) or ``"layernorm"`` (weight and bias); with ``chains > 1``
    the same norm applied to each chain of ``dim / chains`` channels separately (``ChainNorm``)."""
    if name not in NORMS:
        raise ValueError(f"unknown norm {name!r}; choose one of {', '.join(NORMS)}")
    if chains > 1:
        return ChainNorm(dim, chains, eps, name)
    return nn.RMSNorm(dim, eps=eps) if name == "rmsnorm" else nn.LayerNorm(dim, eps=eps)


class ChainNorm(nn.Module):
    """RMSNorm or LayerNorm over each chain of a Chain-of-Model hidden state on its own (Song et al. 2025,
    "Chain-of-Model Learning for Language Model", arXiv 2505.11820, §3.2.3: "applies normalization function to each
    chain"), so output chain i depends on input chain i only.

    ``x [..., dim] -> [..., dim]``, dim split into ``chains`` contiguous chains of ``dim / chains`` channels; the
    statistics (mean square; for layernorm also the mean) are taken per chain. Parameters: ``weight [dim]`` (ones),
    and for layernorm ``bias [dim]`` (zeros): ``dim`` or ``2 * dim``, as the whole-width norm (chain i's affine
    parameters are the slice of chain i). One chain is ``nn.RMSNorm`` / ``nn.LayerNorm``.
    """

    def __init__(self, dim: int, chains: int, eps: float = 1e-5, kind: Literal["rmsnorm", "layernorm"] = "rmsnorm"):
        super().__init__()
        if dim % chains:
            raise ConfigError(f"chain-wise {kind}: width {dim} is not divisible by chains={chains}; choose a number "
                              "of chains that divides d_model")
        self.dim, self.chains, self.eps, self.kind = dim, chains, eps, kind
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim)) if kind == "layernorm" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (self.dim // self.chains,)
        xs = x.unflatten(-1, (self.chains, -1))                                          # (..., chains, dim/chains)
        ys = F.rms_norm(xs, shape, eps=self.eps) if self.bias is None else F.layer_norm(xs, shape, eps=self.eps)
        y = ys.flatten(-2) * self.weight                                                 # (..., dim)
        return y if self.bias is None else y + self.bias

    def extra_repr(self) -> str:
        return f"{self.dim}, chains={self.chains}, eps={self.eps}, kind={self.kind}"


class ScaleNorm(nn.Module):
    """ScaleNorm (Nguyen & Salazar 2019, "Transformers without Tears", arXiv 1910.05895) in the form of MossFormer's
    and FLASH's code: ``y = g x / max(||x||_2 / sqrt(dim), eps)`` over the last axis, one scalar ``g`` (init 1).

    ``x [..., dim] -> [..., dim]``. Parameters: 1."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.dim, self.eps = dim, eps
        self.g = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rms = torch.linalg.vector_norm(x, dim=-1, keepdim=True) * self.dim ** -0.5           # (..., 1)
        return x / rms.clamp(min=self.eps) * self.g

    def extra_repr(self) -> str:
        return f"{self.dim}, eps={self.eps}"
