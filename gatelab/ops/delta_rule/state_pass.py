"""The sequential part of the chunked delta rule, with its backward written out: carrying the state across
chunks, ``S_{n+1} = gamma_n S_n + K_n^T (U_n - W_n S_n)``.

Autograd through a Python loop over chunks records a select, a clone and several small ops per chunk and tensor;
this Function keeps one loop forward and one loop backward, each a handful of batched matmuls per chunk on
contiguous per-chunk slices (its inputs have chunks in the leading dimension).

Legend: N chunks, B batch, H heads, C chunk size, K key dim, V value dim.
"""
from __future__ import annotations

import torch


class DeltaStatePass(torch.autograd.Function):
    """``(u [N,B,H,C,V], w [N,B,H,C,K], kt [N,B,H,K,C], gamma [N,B,H,1,1], h0 [B,H,K,V])`` ->
    ``(starts [N,B,H,K,V], final [B,H,K,V])``: the state entering each chunk and the state after the last.

    Backward, chunk n from last to first, with ``dS`` the gradient reaching ``S_{n+1}`` and ``r = U_n - W_n S_n``:
    ``dK_n = dS r^T``, ``dU_n = K_n dS``, ``dW_n = -dU_n S_n^T``, ``dgamma_n = <dS, S_n>``, and
    ``dS_n = gamma_n dS - W_n^T dU_n + dstarts_n``.
    """

    @staticmethod
    def forward(ctx, u, w, kt, gamma, h0):
        starts = u.new_empty(u.shape[0], *h0.shape)                     # (N, B, H, K, V)
        h = h0
        for n in range(u.shape[0]):
            starts[n] = h
            h = gamma[n] * h + kt[n] @ (u[n] - w[n] @ h)                # (B, H, K, V)
        ctx.save_for_backward(u, w, kt, gamma, starts)
        return starts, h

    @staticmethod
    def backward(ctx, d_starts, d_final):
        u, w, kt, gamma, starts = ctx.saved_tensors                     # (N, B, H, ...)
        du, dw, dkt, dgamma = (torch.empty_like(x) for x in (u, w, kt, gamma))
        dS = torch.zeros_like(starts[0]) if d_final is None else d_final.clone()   # (B, H, K, V)
        for n in reversed(range(u.shape[0])):
            S = starts[n]                                               # (B, H, K, V)
            r = u[n] - w[n] @ S                                         # (B, H, C, V)
            dkt[n] = dS @ r.transpose(-1, -2)                           # (B, H, K, C)
            dr = kt[n].transpose(-1, -2) @ dS                           # (B, H, C, V)
            du[n] = dr
            dw[n] = -dr @ S.transpose(-1, -2)                           # (B, H, C, K)
            dgamma[n] = (dS * S).sum(dim=(-1, -2), keepdim=True)        # (B, H, 1, 1)
            dS = gamma[n] * dS - w[n].transpose(-1, -2) @ dr            # (B, H, K, V)
            if d_starts is not None:
                dS = dS + d_starts[n]
        return du, dw, dkt, dgamma, dS
