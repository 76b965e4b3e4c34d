"""MossFormer's (FLASH's) attention, chunked form: the groups' quadratic attention as one batched matmul, the linear
part as an exclusive cumulative sum of the groups' ``lin_k^T v`` (the inclusive one shifted by a group, not minus
the group's own term, which would cancel). Equal to ``ref.recurrent_mossformer_attention``.

Legend: B batch, T length, H heads, D query/key dim, E value dim, G group size, n = ceil(T / G) groups.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _groups(x: torch.Tensor, G: int) -> torch.Tensor:
    """``x [B, T, H, *]`` zero-padded to ``n G`` positions, as ``[B, n, G, H, *]``."""
    B, T = x.shape[:2]
    n = math.ceil(T / G)
    return F.pad(x, (0, 0, 0, 0, 0, n * G - T)).view(B, n, G, *x.shape[2:])


def chunk_mossformer_attention(quad_q: torch.Tensor, quad_k: torch.Tensor, lin_q: torch.Tensor,
                               lin_k: torch.Tensor, v: torch.Tensor, *, chunk_size: int = 256,
                               initial_state: torch.Tensor | None = None, output_final_state: bool = False
                               ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The signature and result of ``recurrent_mossformer_attention`` (``chunk_size`` is the group size G)."""
    if chunk_size < 1:
        raise ValueError(f"mossformer attention needs chunk_size >= 1, got {chunk_size}")
    B, T, H, D = quad_q.shape
    G = chunk_size
    qq, kq, ql, kl, vg = (_groups(x, G) for x in (quad_q, quad_k, lin_q, lin_k, v))  # (B, n, G, H, *)
    scores = torch.einsum("bnihd,bnjhd->bnhij", qq, kq) / G                          # (B, n, H, G, G)
    future = torch.ones(G, G, dtype=torch.bool, device=quad_q.device).triu(1)
    attn = torch.relu(scores).square().masked_fill(future, 0.0)
    o = torch.einsum("bnhij,bnjhe->bnihe", attn, vg)                                 # (B, n, G, H, E)
    kv = torch.einsum("bnjhd,bnjhe->bnhde", kl, vg) / G                              # (B, n, H, D, E)
    before = F.pad(kv.cumsum(1), (0, 0, 0, 0, 0, 0, 1, -1))                          # earlier groups only: shifted
    if initial_state is not None:
        before = before + initial_state.unsqueeze(1)
    o = o + torch.einsum("bnihd,bnhde->bnihe", ql, before)
    final = None
    if output_final_state:
        final = kv[:, :T // G].sum(1)                                                # complete groups: (B, H, D, E)
        final = final if initial_state is None else final + initial_state
    return o.reshape(B, -1, H, v.shape[-1])[:, :T], final
