"""Linear attention with a per-head scalar decay, reference recurrence (RetNet, Mamba2/SSD, linear attention).

Legend: B batch, T time, H heads, K key dim, V value dim.
"""
from __future__ import annotations

import torch

from .._common import check_recurrent_inputs, compute_dtype


def recurrent_simple_gla(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    g: torch.Tensor | None = None,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    chunk_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``S_t = e^{g_t} S_{t-1} + k_t^T v_t``, ``o_t = (scale q_t) S_t``, one scalar log decay per head and token.

    RetNet (Sun et al. 2023) uses a fixed ``g = log(1 - 2^{-5-h})``; Mamba2's SSD (Dao & Gu 2024) uses
    ``g = A dt``; ``g=None`` is plain (ungated) linear attention (Katharopoulos et al. 2020).

    Args:
        q, k: ``[B, T, H, K]``; v: ``[B, T, H, V]``; g: ``[B, T, H]`` log decays (``<= 0``) or None.
        scale: multiplies q; default ``K ** -0.5``. initial_state: ``[B, H, K, V]`` or None.
        chunk_size: unused here (one signature for every form).

    Returns:
        ``o`` ``[B, T, H, V]`` in q's dtype and the final state ``[B, H, K, V]`` (float32/float64) or None.
    """
    B, T, H, K, V = check_recurrent_inputs("recurrent_simple_gla", q, k, v, g, initial_state, chunk_size, "head")
    dtype, ct = q.dtype, compute_dtype(q)
    scale = K**-0.5 if scale is None else scale
    q, k, v = (x.to(ct) for x in (q, k, v))
    g = q.new_zeros(B, T, H) if g is None else g.to(ct)                   # (B, T, H)
    h = q.new_zeros(B, H, K, V) if initial_state is None else initial_state.to(ct)  # (B, H, K, V)
    outputs = []
    for t in range(T):
        decay = g[:, t].exp()[:, :, None, None]                            # (B, H, 1, 1)
        h = decay * h + k[:, t].unsqueeze(-1) * v[:, t].unsqueeze(-2)     # (B, H, K, V)
        outputs.append(torch.einsum("bhk,bhkv->bhv", q[:, t] * scale, h))  # (B, H, V)
    o = torch.stack(outputs, dim=1) if T else v.new_zeros(B, 0, H, V)     # (B, T, H, V)
    return o.to(dtype), (h if output_final_state else None)
