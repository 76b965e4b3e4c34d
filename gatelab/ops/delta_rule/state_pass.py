"""The sequential part of the chunked delta rule and its backward: carrying the state across chunks,
``S_{n+1} = gamma_n S_n + K_n^T (U_n - W_n S_n)``. Only what depends on the previous chunk runs in the loop (a few
batched matmuls on contiguous per-chunk slices; the inputs have chunks in the leading dimension); everything else is
one matmul over all chunks before or after it.

Legend: N chunks, B batch, H heads, C chunk size, K key dim, V value dim.
"""
from __future__ import annotations

import torch


def carry_states(u: torch.Tensor, w: torch.Tensor, kt: torch.Tensor, gamma: torch.Tensor, h0: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(u [N,B,H,C,V], w [N,B,H,C,K], kt [N,B,H,K,C], gamma [N,B,H,1,1], h0 [B,H,K,V])`` ->
    ``(starts [N,B,H,K,V], written [N,B,H,C,V], final [B,H,K,V])``: the state entering each chunk, the values each
    chunk writes, ``U_n - W_n S_n``, and the state after the last chunk."""
    starts = u.new_empty(u.shape[0], *h0.shape)                         # (N, B, H, K, V)
    written = torch.empty_like(u)                                       # (N, B, H, C, V)
    h = h0
    for n in range(u.shape[0]):
        starts[n] = h
        torch.sub(u[n], w[n] @ h, out=written[n])                       # (B, H, C, V)
        h = gamma[n] * h + kt[n] @ written[n]                           # (B, H, K, V)
    return starts, written, h


def carry_states_backward(w, kt, gamma, starts, written, d_starts, d_final, d_written
                          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Backward of ``carry_states``, given the gradients reaching the chunk start states and the written values from
    outside it (``d_starts``, ``d_written``). With ``dS`` the gradient reaching ``S_{n+1}``:
    ``dr_n = d_written_n + K_n dS`` and ``dS_n = gamma_n dS - W_n^T dr_n + dstarts_n`` run from the last chunk to
    the first; then, over all chunks at once, ``dU = dr``, ``dW = -dr S^T``, ``dK = r dS^T`` and
    ``dgamma = <dS, S>``.

    ``d_written`` becomes ``dU`` in place; returns ``(dU, dW, dK [N,B,H,C,K], dgamma, dh0)``.
    """
    d_next = torch.empty_like(starts)                                   # (N, B, H, K, V) dS reaching S_{n+1}
    dr = d_written                                                      # (N, B, H, C, V)
    dS = torch.zeros_like(starts[0]) if d_final is None else d_final    # (B, H, K, V)
    for n in reversed(range(written.shape[0])):
        d_next[n] = dS
        dr[n] += kt[n].transpose(-1, -2) @ dS                           # (B, H, C, V)
        dS = gamma[n] * dS - w[n].transpose(-1, -2) @ dr[n] + d_starts[n]  # (B, H, K, V)
    dw = (dr @ starts.transpose(-1, -2)).neg_()                         # (N, B, H, C, K)
    dk = written @ d_next.transpose(-1, -2)                             # (N, B, H, C, K)
    dgamma = (d_next * starts).sum(dim=(-1, -2), keepdim=True)          # (N, B, H, 1, 1)
    return dr, dw, dk, dgamma, dS
