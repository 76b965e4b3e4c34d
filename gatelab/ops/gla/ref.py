"""Gated linear attention, reference recurrence: one token at a time, readable, the oracle for ``chunk_gla``.

Legend: B batch, T time, H heads, K key dim, V value dim.
"""
from __future__ import annotations

import torch

from .._common import check_recurrent_inputs, compute_dtype


def recurrent_gla(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    g: torch.Tensor,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    chunk_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Gated linear attention (Yang et al. 2023, arXiv 2312.06635), token by token.

    ``S_t = diag(exp(g_t)) S_{t-1} + k_t^T v_t`` and ``o_t = (scale * q_t) S_t``.

    Args:
        q, k: ``[B, T, H, K]``.
        v: ``[B, T, H, V]``.
        g: ``[B, T, H, K]`` per-channel log forget gates (``<= 0``), e.g. ``logsigmoid(x) / 16``.
        scale: multiplies q; default ``K ** -0.5``.
        initial_state: ``[B, H, K, V]`` or None (zeros).
        output_final_state: also return the state after the last token.
        chunk_size: unused here; accepted so every form of the op has one signature.

    Returns:
        ``o`` ``[B, T, H, V]`` in q's dtype, and the final state ``[B, H, K, V]`` (float32 or float64) or None.
    """
    B, T, H, K, V = check_recurrent_inputs("recurrent_gla", q, k, v, g, initial_state, chunk_size, "channel")
    dtype, ct = q.dtype, compute_dtype(q)
    scale = K**-0.5 if scale is None else scale
    q, k, v, g = (x.to(ct) for x in (q, k, v, g))
    h = q.new_zeros(B, H, K, V) if initial_state is None else initial_state.to(ct)  # (B, H, K, V)
    outputs = []
    for t in range(T):
        decay = g[:, t].exp().unsqueeze(-1)                   # (B, H, K, 1)
        kv = k[:, t].unsqueeze(-1) * v[:, t].unsqueeze(-2)    # (B, H, K, V) outer product k_t^T v_t
        h = decay * h + kv                                    # (B, H, K, V)
        o_t = torch.einsum("bhk,bhkv->bhv", q[:, t] * scale, h)  # (B, H, V)
        outputs.append(o_t)
    o = torch.stack(outputs, dim=1) if T else v.new_zeros(B, 0, H, V)  # (B, T, H, V)
    return o.to(dtype), (h if output_final_state else None)
