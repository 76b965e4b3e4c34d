"""The sequential part of the chunked delta rule and its backward: carrying the state across chunks.

With ``KU_n = K_n^T U_n`` and ``KW_n = K_n^T W_n`` formed for all chunks at once (one batched matmul, outside),
the hand-off ``S_{n+1} = gamma_n S_n + K_n^T (U_n - W_n S_n)`` is ``S_{n+1} = gamma_n S_n + KU_n - KW_n S_n``:
one ``K x K`` by ``K x V`` matmul per chunk in each direction, on contiguous per-chunk slices.

Legend: N chunks, B batch, H heads, K key dim, V value dim.
"""
from __future__ import annotations

import torch


def carry_states(kukw: torch.Tensor, gamma: torch.Tensor, h0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(kukw [N,B,H,K,V+K] = [KU | KW], gamma [N,B,H,1,1], h0 [B,H,K,V])`` ->
    ``(starts [N,B,H,K,V], final [B,H,K,V])``: the state entering each chunk and the state after the last."""
    V = h0.shape[-1]
    starts = kukw.new_empty(kukw.shape[0], *h0.shape)                  # (N, B, H, K, V)
    h = h0
    for n in range(kukw.shape[0]):
        starts[n] = h
        h = gamma[n] * h + kukw[n, ..., :V] - kukw[n, ..., V:] @ h     # (B, H, K, V)
    return starts, h


def carry_states_backward(kukw: torch.Tensor, gamma: torch.Tensor, starts: torch.Tensor, d_starts: torch.Tensor,
                          d_final: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Backward of ``carry_states``, chunk n from last to first, with ``dS`` the gradient reaching ``S_{n+1}``:
    ``dKU_n = dS``, ``dKW_n = -dS S_n^T``, ``dgamma_n = <dS, S_n>`` and
    ``dS_n = gamma_n dS - KW_n^T dS + dstarts_n``. Returns ``(d_kukw, dgamma, dh0)``."""
    V = starts.shape[-1]
    d_kukw, dgamma = torch.empty_like(kukw), torch.empty_like(gamma)   # (N, B, H, K, V+K), (N, B, H, 1, 1)
    dS = torch.zeros_like(starts[0]) if d_final is None else d_final.clone()   # (B, H, K, V)
    for n in reversed(range(kukw.shape[0])):
        S = starts[n]                                                   # (B, H, K, V)
        d_kukw[n, ..., :V] = dS
        d_kukw[n, ..., V:] = -(dS @ S.transpose(-1, -2))                # (B, H, K, K)
        dgamma[n] = (dS * S).sum(dim=(-1, -2), keepdim=True)            # (B, H, 1, 1)
        dS = gamma[n] * dS - kukw[n, ..., V:].transpose(-1, -2) @ dS + d_starts[n]  # (B, H, K, V)
    return d_kukw, dgamma, dS
