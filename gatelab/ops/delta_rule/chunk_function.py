"""The chunked (gated) delta rule as one autograd Function, its backward written out (README.md, "Backward").

Every tensor has chunks leading and is contiguous: N chunks, B batch, H heads, C chunk size, K key dim, V value dim.
"""
from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from .state_pass import carry_states, carry_states_backward


def _unit_lower_inverse(A: torch.Tensor) -> torch.Tensor:
    """``(I + tril(A, -1))^{-1}`` for ``A [..., C, C]``; the diagonal and upper triangle of ``A`` are never read.
    One solve against the identity: cheaper than solving against the wider ``[V | K]`` right-hand sides, and the
    backward pass then applies the transpose with a matmul instead of a second solve."""
    eye = torch.eye(A.shape[-1], dtype=A.dtype, device=A.device).expand_as(A)  # (..., C, C)
    return torch.linalg.solve_triangular(A, eye, upper=False, unitriangular=True)


class ChunkDeltaRule(torch.autograd.Function):
    """``(q, k [N,B,H,C,K], v [N,B,H,C,V], g, beta [N,B,H,C,1], h0 [B,H,K,V])`` -> ``(o [N,B,H,C,V], final)``;
    q already scaled, g the log decay per token (0 for DeltaNet)."""

    @staticmethod
    def forward(ctx, q, k, v, g, beta, h0):
        C, V = q.shape[-2], v.shape[-1]
        G = g.cumsum(dim=-2)                                                    # (N, B, H, C, 1)
        lower = torch.ones(C, C, dtype=torch.bool, device=q.device).tril()      # (C, C) j <= i
        decay = (G - G.transpose(-1, -2)).masked_fill_(~lower, float("-inf")).exp_()  # (N, B, H, C, C)
        qb = torch.cat([q, beta * k], dim=-2)                                   # (N, B, H, 2C, K) [q ; beta k]
        scores = qb @ k.transpose(-1, -2)                                       # (N, B, H, 2C, C)
        PA = scores.view(*scores.shape[:-2], 2, C, C) * decay.unsqueeze(-3)     # (N, B, H, 2, C, C)
        P, A = PA.unbind(-3)                                                    # attn (j <= i), A (j < i used)
        eG = G.exp()                                                            # (N, B, H, C, 1)
        T = _unit_lower_inverse(A)                                              # (N, B, H, C, C) (I + A)^-1
        R = v.new_empty(*v.shape[:-1], V + k.shape[-1])                         # (N, B, H, C, V + K)
        torch.mul(beta, v, out=R[..., :V])                                      # beta v
        torch.mul(qb[..., C:, :], eG, out=R[..., V:])                           # beta e^G k
        X = T @ R                                                               # (N, B, H, C, V + K) [u | w]
        to_end = (G[..., -1:, :] - G).exp()                                     # (N, B, H, C, 1)
        kt = (k * to_end).transpose(-1, -2).contiguous()                        # (N, B, H, K, C)
        gamma = eG[..., -1:, :]                                                 # (N, B, H, 1, 1)
        starts, written, final = carry_states(X[..., :V], X[..., V:], kt, gamma, h0)  # (N,B,H,K,V), (N,B,H,C,V), ..
        qg = q * eG                                                             # (N, B, H, C, K)
        o = torch.matmul(qg, starts).add_(P @ written)                          # (N, B, H, C, V)
        ctx.save_for_backward(q, k, v, beta, decay, qb, scores, PA, T, eG, X, qg, to_end, kt, gamma, starts, written)
        return o, final

    @staticmethod
    @once_differentiable
    def backward(ctx, do, d_final):
        q, k, v, beta, decay, qb, scores, PA, T, eG, X, qg, to_end, kt, gamma, starts, written = ctx.saved_tensors
        C, V = q.shape[-2], v.shape[-1]
        # Batched matmuls run as one call only on operands whose matrices are dense and outputs that are whole
        # tensors; anything else (an expanded gradient, an ``out=`` slice) loops over the N*B*H matrices one by one.
        do = do.contiguous()                                                    # (N, B, H, C, V)
        P = PA[..., 0, :, :]                                                    # (N, B, H, C, C)
        d_qg = do @ starts.transpose(-1, -2)                                    # (N, B, H, C, K)
        d_starts = qg.transpose(-1, -2) @ do                                    # (N, B, H, K, V)
        dP = do @ written.transpose(-1, -2)                                     # (N, B, H, C, C)
        du, dw, dk_end, dgamma, dh0 = carry_states_backward(X[..., V:], kt, gamma, starts, written, d_starts,
                                                             d_final, P.transpose(-1, -2) @ do)
        dX = torch.cat([du, dw], dim=-1)                                        # (N, B, H, C, V + K)
        dR = T.transpose(-1, -2) @ dX                                           # (N, B, H, C, V + K)
        dA = (dR @ X.transpose(-1, -2)).neg_()                                  # (N, B, H, C, C) ...
        dA.diagonal(dim1=-2, dim2=-1).zero_()                                   # ... strictly lower (decay: upper)
        dPA = torch.stack([dP, dA], dim=-3)                                     # (N, B, H, 2, C, C)
        dD = (dPA * scores.view_as(PA)).sum(-3)                                 # (N, B, H, C, C)
        dscores = dPA.mul_(decay.unsqueeze(-3)).view_as(scores)                 # (N, B, H, 2C, C)
        dqb = dscores @ k                                                       # (N, B, H, 2C, K)
        dk = dscores.transpose(-1, -2) @ qb                                     # (N, B, H, C, K)
        Z = dD.mul_(decay)                                                      # (N, B, H, C, C) dL/d(G_i - G_j)
        dG = Z.sum(-1, keepdim=True) - Z.sum(-2).unsqueeze(-1)                  # (N, B, H, C, 1)
        dRv, dRk = dR[..., :V], dR[..., V:]
        dv = beta * dRv                                                         # (N, B, H, C, V)
        dbk = torch.addcmul(dqb[..., C:, :], dRk, eG)                           # (N, B, H, C, K)
        dq = torch.addcmul(dqb[..., :C, :], d_qg, eG)                           # (N, B, H, C, K)
        dG += ((dRk * qb[..., C:, :]).sum(-1, keepdim=True) + (d_qg * q).sum(-1, keepdim=True)) * eG
        dk.addcmul_(dk_end, to_end).addcmul_(dbk, beta)
        d_end = (dk_end * k).sum(-1, keepdim=True) * to_end                     # (N, B, H, C, 1) dL/d(G_C - G_i)
        dG -= d_end
        dG[..., -1:, :] += d_end.sum(-2, keepdim=True) + dgamma * gamma
        dbeta = (dRv * v).sum(-1, keepdim=True) + (dbk * k).sum(-1, keepdim=True)  # (N, B, H, C, 1)
        dg = dG.flip(-2).cumsum(-2).flip(-2)                                    # (N, B, H, C, 1) G = cumsum(g)
        return dq, dk, dv, dg, dbeta, dh0
