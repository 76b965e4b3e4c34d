"""Normalisation layers by name."""
from __future__ import annotations

from torch import nn

NORMS = ("rmsnorm", "layernorm")


def build_norm(name: str, dim: int, eps: float = 1e-5) -> nn.Module:
    """``"rmsnorm"`` (Zhang & Sennrich 2019; weight only) or ``"layernorm"`` (weight and bias)."""
    if name == "rmsnorm":
        return nn.RMSNorm(dim, eps=eps)
    if name == "layernorm":
        return nn.LayerNorm(dim, eps=eps)
    raise ValueError(f"unknown norm {name!r}; choose one of {', '.join(NORMS)}")
