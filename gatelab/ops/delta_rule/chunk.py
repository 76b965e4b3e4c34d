"""(Gated) delta rule, chunkwise: the UT transform turns each chunk's sequential updates into matmuls.

Legend: B batch, T time, H heads, N chunks, C chunk size, K key dim, V value dim.
"""
from __future__ import annotations

import torch

from .._chunk import from_chunks, to_chunks
from .._common import check_recurrent_inputs, compute_dtype
from .ref import check_beta


def chunk_gated_delta_rule(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    g: torch.Tensor | None = None,
    beta: torch.Tensor,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    chunk_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Chunkwise form of ``recurrent_gated_delta_rule`` (same arguments and results; README.md has the math).

    Within a chunk the written values are ``U = T (beta V) - T (beta e^G K) S_0`` with
    ``T = (I + A)^{-1}``, ``A_ij = beta_i (k_i . k_j) e^{G_i - G_j}`` for ``j < i`` (a unit lower-triangular
    solve per chunk). Then ``O = (Q e^G) S_0 + ((Q K^T) * D) U`` and ``S_C = e^{G_C} S_0 + (K e^{G_C - G})^T U``.
    Every exponent is <= 0.
    """
    B, T, H, K, V = check_recurrent_inputs("chunk_gated_delta_rule", q, k, v, g, initial_state, chunk_size, "head")
    check_beta("chunk_gated_delta_rule", beta, q)
    dtype, ct = q.dtype, compute_dtype(q)
    scale = K**-0.5 if scale is None else scale
    C = chunk_size
    g = q.new_zeros(B, T, H) if g is None else g
    q, k, v, g, beta = (to_chunks(x, C, ct) for x in (q * scale, k, v, g.unsqueeze(-1), beta.unsqueeze(-1)))
    G = g.cumsum(dim=-2)                                                    # (B, H, N, C, 1)
    lower = torch.ones(C, C, dtype=torch.bool, device=q.device).tril()      # (C, C) j <= i
    decay = (G - G.transpose(-1, -2)).masked_fill(~lower, float("-inf")).exp()  # (B, H, N, C, C)
    eye = torch.eye(C, dtype=ct, device=q.device)
    qk_kk = torch.cat([q, k], dim=-2) @ k.transpose(-1, -2)                 # (B, H, N, 2C, C) q.k and k.k
    attn = qk_kk[..., :C, :] * decay                                        # (B, H, N, C, C)
    A = (beta * qk_kk[..., C:, :] * decay).masked_fill(lower.logical_not().logical_or(eye.bool()), 0.0)
    rhs = torch.cat([beta * v, beta * G.exp() * k], dim=-1)                 # (B, H, N, C, V + K)
    solved = torch.linalg.solve_triangular(eye + A, rhs, upper=False, unitriangular=True)
    u, w = solved.split([V, K], dim=-1)                                     # (B, H, N, C, V), (B, H, N, C, K)
    # o_n = (q e^G) S_n + attn (u - w S_n) = (q e^G - attn w) S_n + attn u: only S_n is sequential.
    o_local, attn_w = (attn @ solved).split([V, K], dim=-1)                 # (B, H, N, C, V), (B, H, N, C, K)
    q_state = q * G.exp() - attn_w                                          # (B, H, N, C, K)
    k_to_end = (k * (G[..., -1:, :] - G).exp()).transpose(-1, -2)           # (B, H, N, K, C)
    chunk_decay = G[..., -1, :].exp().unsqueeze(-1)                         # (B, H, N, 1, 1)
    h = q.new_zeros(B, H, K, V) if initial_state is None else initial_state.to(ct)  # (B, H, K, V)
    starts = []
    for u_n, w_n, k_n, decay_n in zip(u.unbind(2), w.unbind(2), k_to_end.unbind(2), chunk_decay.unbind(2),
                                      strict=True):                         # sequential over chunks, not tokens
        starts.append(h)
        h = decay_n * h + k_n @ (u_n - w_n @ h)                             # (B, H, K, V)
    o = q_state @ torch.stack(starts, dim=2) + o_local                      # (B, H, N, C, V)
    return from_chunks(o, T).to(dtype), (h if output_final_state else None)
