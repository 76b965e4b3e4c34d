"""Input checks shared by the two forms of kernelized attention with a relative positional encoding."""
from __future__ import annotations

import torch


def check_kernel_rpe_inputs(name: str, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor,
                            block_size: int) -> tuple[int, int, int, int, int, int]:
    """Validate q ``[B, Tq, H, M]``, k ``[B, Tk, H, M]`` (Tq <= Tk), v ``[B, Tk, H, V]``, bias ``[H, Tk]`` and
    the block size (a power of two); return ``(B, Tq, H, M, Tk, V)``."""
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError(f"{name}: q, k, v must be [B, T, H, *]; got {[tuple(x.shape) for x in (q, k, v)]}")
    B, Tq, H, M = q.shape
    Tk = k.shape[1]
    if k.shape != (B, Tk, H, M) or v.shape[:3] != (B, Tk, H) or Tq > Tk:
        raise ValueError(f"{name}: expected q [B, Tq, H, M], k [B, Tk, H, M], v [B, Tk, H, V] with Tq <= Tk; got "
                         f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    if tuple(bias.shape) != (H, Tk):
        raise ValueError(f"{name}: bias must be [H, Tk] = {(H, Tk)} (one log weight per head and lag); got "
                         f"{tuple(bias.shape)}")
    if block_size < 1 or block_size & (block_size - 1):
        raise ValueError(f"{name}: block_size must be a power of two; got {block_size}")
    return B, Tq, H, M, Tk, v.shape[-1]
