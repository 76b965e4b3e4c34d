"""Rotary position embedding (Su et al. 2021, RoFormer), rotate-half layout as in LLaMA."""
from __future__ import annotations

import torch
from torch import nn


class RotaryEmbedding(nn.Module):
    """Rotates pairs ``(x_i, x_{i + D/2})`` of each head by angle ``pos * base^(-2i/D)``.

    ``forward(x, offset)`` takes ``[B, T, H, D]`` at absolute positions ``offset .. offset + T - 1``.
    No parameters; angles are computed in float32 (float64 for float64 inputs).
    """

    def __init__(self, head_dim: int, base: float = 10000.0):
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"RotaryEmbedding needs an even head_dim; got {head_dim}")
        self.head_dim, self.base = head_dim, base

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        ct = torch.float64 if x.dtype == torch.float64 else torch.float32
        half = self.head_dim // 2
        inv_freq = self.base ** (-torch.arange(half, device=x.device, dtype=ct) / half)  # (D/2,)
        pos = torch.arange(offset, offset + x.shape[1], device=x.device, dtype=ct)      # (T,)
        angles = pos.unsqueeze(1) * inv_freq                                              # (T, D/2)
        cos = angles.cos()[None, :, None, :]                                             # (1, T, 1, D/2)
        sin = angles.sin()[None, :, None, :]
        x1, x2 = x.to(ct)[..., :half], x.to(ct)[..., half:]                               # (B, T, H, D/2)
        return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1).to(x.dtype)
