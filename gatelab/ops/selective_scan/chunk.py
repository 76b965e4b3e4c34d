"""Selective scan (Mamba-1), chunkwise parallel: the scan is GLA with one head per channel.

Legend: B batch, T time, E channels, N state size.
"""
from __future__ import annotations

import torch

from ..gla.chunk import chunk_gla
from .ref import check_scan_inputs


def chunk_selective_scan(
    x: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    *,
    D: torch.Tensor | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    chunk_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Chunkwise form of ``recurrent_selective_scan`` (same arguments and results).

    Each channel e is a GLA head with key dim N and value dim 1: ``q = C_t``, ``k = B_t``, ``v = dt_t x_t`` and the
    per-channel log gate ``g = dt_t A_e`` (``<= 0``). ``chunk_gla`` then runs the scan as matmuls over chunks, with
    its stability guarantees under strong decay (``gla/README.md``).
    """
    check_scan_inputs("chunk_selective_scan", x, dt, A, B, C, D, initial_state)
    Bt, T, E = x.shape
    N = A.shape[-1]
    q = C.unsqueeze(2).expand(Bt, T, E, N)                                          # (B, T, E, N)
    k = B.unsqueeze(2).expand(Bt, T, E, N)                                          # (B, T, E, N)
    v = (dt * x).unsqueeze(-1)                                                      # (B, T, E, 1)
    g = dt.unsqueeze(-1) * A                                                        # (B, T, E, N)
    h0 = None if initial_state is None else initial_state.unsqueeze(-1)             # (B, E, N, 1)
    y, h = chunk_gla(q, k, v, g=g, scale=1.0, initial_state=h0, output_final_state=output_final_state,
                     chunk_size=chunk_size)
    y = y.squeeze(-1)                                                               # (B, T, E)
    if D is not None:
        y = y + (D * x).to(y.dtype)
    return y, (h.squeeze(-1) if h is not None else None)
