"""Rotary position embedding (Su et al. 2021, RoFormer), rotate-half layout as in LLaMA, with optional
context-extension scaling: NTK-aware (a larger base) and YaRN (Peng et al. 2023: per-frequency interpolation
plus an attention temperature)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn


@dataclass(frozen=True)
class RopeScaling:
    """How to run a RoPE model beyond its training length ``original_max_len``, by ``factor``.

    ``ntk``: base becomes ``base * factor^(D / (D - 2))`` (NTK-aware scaling). ``yarn``: frequencies whose
    wavelength fits ``original_max_len`` more than ``beta_fast`` times keep their value, those fitting fewer than
    ``beta_slow`` times are divided by ``factor``, a linear ramp in between; cos and sin are multiplied by
    ``0.1 ln(factor) + 1`` (so the logits by its square). Both are the identity at factor 1."""

    kind: Literal["ntk", "yarn"]
    factor: float
    original_max_len: int
    beta_fast: float = 32.0
    beta_slow: float = 1.0


def _yarn_correction_dim(rotations: float, dim: int, base: float, max_len: int) -> float:
    """The frequency index whose wavelength fits ``max_len`` exactly ``rotations`` times."""
    return dim * math.log(max_len / (rotations * 2 * math.pi)) / (2 * math.log(base))


def rope_frequencies(head_dim: int, base: float, scaling: RopeScaling | None, dtype: torch.dtype,
                     device: torch.device | None = None) -> tuple[torch.Tensor, float]:
    """``inv_freq [D/2]`` and the factor applied to cos and sin."""
    half = head_dim // 2
    idx = torch.arange(half, device=device, dtype=dtype)                                 # (D/2,)
    if scaling is None or scaling.factor == 1.0:
        return base ** (-idx / half), 1.0
    if scaling.kind == "ntk":
        return (base * scaling.factor ** (head_dim / (head_dim - 2))) ** (-idx / half), 1.0
    extrapolated = base ** (-idx / half)                                                  # (D/2,)
    interpolated = extrapolated / scaling.factor
    low = max(math.floor(_yarn_correction_dim(scaling.beta_fast, head_dim, base, scaling.original_max_len)), 0)
    high = min(math.ceil(_yarn_correction_dim(scaling.beta_slow, head_dim, base, scaling.original_max_len)),
               head_dim - 1)
    ramp = ((idx - low) / max(high - low, 1e-3)).clamp(0, 1)                              # 0: keep, 1: interpolate
    return extrapolated * (1 - ramp) + interpolated * ramp, 0.1 * math.log(scaling.factor) + 1.0


class RotaryEmbedding(nn.Module):
    """Rotates pairs ``(x_i, x_{i + D/2})`` of each head by angle ``pos * base^(-2i/D)``.

    ``forward(x, offset)`` takes ``[B, T, H, D]`` at absolute positions ``offset .. offset + T - 1``.
    No parameters; angles are computed in float32 (float64 for float64 inputs). ``scaling`` (None by default)
    selects a context-extension method for evaluation beyond the training length.
    """

    def __init__(self, head_dim: int, base: float = 10000.0, scaling: RopeScaling | None = None):
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"RotaryEmbedding needs an even head_dim; got {head_dim}")
        self.head_dim, self.base, self.scaling = head_dim, base, scaling

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        ct = torch.float64 if x.dtype == torch.float64 else torch.float32
        half = self.head_dim // 2
        inv_freq, factor = rope_frequencies(self.head_dim, self.base, self.scaling, ct, x.device)   # (D/2,)
        pos = torch.arange(offset, offset + x.shape[1], device=x.device, dtype=ct)      # (T,)
        angles = pos.unsqueeze(1) * inv_freq                                              # (T, D/2)
        cos = (angles.cos() * factor)[None, :, None, :]                                  # (1, T, 1, D/2)
        sin = (angles.sin() * factor)[None, :, None, :]
        x1, x2 = x.to(ct)[..., :half], x.to(ct)[..., half:]                               # (B, T, H, D/2)
        return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1).to(x.dtype)
