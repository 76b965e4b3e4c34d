"""The sequential part of the chunked delta rule and its backward: carrying the state across chunks,
``S_{n+1} = gamma_n S_n + K_n^T (U_n - W_n S_n)``, a handful of batched matmuls per chunk on contiguous per-chunk
slices (the inputs have chunks in the leading dimension).

Legend: N chunks, B batch, H heads, C chunk size, K key dim, V value dim.
"""
from __future__ import annotations

import torch


def carry_states(u: torch.Tensor, w: torch.Tensor, kt: torch.Tensor, gamma: torch.Tensor, h0: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(u [N,B,H,C,V], w [N,B,H,C,K], kt [N,B,H,K,C], gamma [N,B,H,1,1], h0 [B,H,K,V])`` ->
    ``(starts [N,B,H,K,V], final [B,H,K,V])``: the state entering each chunk and the state after the last."""
    starts = u.new_empty(u.shape[0], *h0.shape)                         # (N, B, H, K, V)
    h = h0
    for n in range(u.shape[0]):
        starts[n] = h
        h = gamma[n] * h + kt[n] @ (u[n] - w[n] @ h)                    # (B, H, K, V)
    return starts, h


def carry_states_backward(u, w, kt, gamma, starts, d_starts, d_final, du, dw
                          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Backward of ``carry_states``, chunk n from last to first, with ``dS`` the gradient reaching ``S_{n+1}`` and
    ``r = U_n - W_n S_n``: ``dK_n = dS r^T``, ``dU_n = K_n dS``, ``dW_n = -dU_n S_n^T``,
    ``dgamma_n = <dS, S_n>`` and ``dS_n = gamma_n dS - W_n^T dU_n + dstarts_n``.

    ``du`` and ``dw`` (shaped like u and w) are added to in place; returns ``(dkt, dgamma, dh0)``.
    """
    dkt, dgamma = torch.empty_like(kt), torch.empty_like(gamma)
    dS = torch.zeros_like(starts[0]) if d_final is None else d_final.clone()   # (B, H, K, V)
    for n in reversed(range(u.shape[0])):
        S = starts[n]                                                   # (B, H, K, V)
        r = u[n] - w[n] @ S                                             # (B, H, C, V)
        dkt[n] = dS @ r.transpose(-1, -2)                               # (B, H, K, C)
        dr = kt[n].transpose(-1, -2) @ dS                               # (B, H, C, V)
        du[n] += dr
        dw[n] -= dr @ S.transpose(-1, -2)                               # (B, H, C, K)
        dgamma[n] = (dS * S).sum(dim=(-1, -2), keepdim=True)            # (B, H, 1, 1)
        dS = gamma[n] * dS - w[n].transpose(-1, -2) @ dr + d_starts[n]  # (B, H, K, V)
    return dkt, dgamma, dS
