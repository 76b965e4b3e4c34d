"""(Gated) delta rule, reference recurrence: DeltaNet and Gated DeltaNet, one token at a time.

Legend: B batch, T time, H heads, K key dim, V value dim.
"""
from __future__ import annotations

import torch

from .._common import check_recurrent_inputs, compute_dtype


def check_beta(name: str, beta: torch.Tensor, q: torch.Tensor) -> None:
    if beta.shape != q.shape[:3]:
        raise ValueError(f"{name}: beta must be [B, T, H] = {tuple(q.shape[:3])}; got {tuple(beta.shape)}")


def recurrent_gated_delta_rule(
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
    """Gated delta rule (Yang, Kautz, Hatamizadeh 2024, arXiv 2412.06464), token by token.

    ``S_t = e^{g_t} (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T`` (state ``[K, V]``), ``o_t = (scale q_t) S_t``.
    With ``g=None`` this is DeltaNet's delta rule (Schlag et al. 2021; Yang et al. 2024, arXiv 2406.06484).
    The layer L2-normalises k (and q); the op takes them as given.

    Args:
        q, k: ``[B, T, H, K]``; v: ``[B, T, H, V]``; g: ``[B, T, H]`` log decays (``<= 0``) or None;
        beta: ``[B, T, H]`` writing strengths in [0, 1] (or [0, 2] for negative eigenvalues).
        scale: multiplies q; default ``K ** -0.5``. initial_state: ``[B, H, K, V]`` or None.
        chunk_size: unused here (one signature for every form).

    Returns:
        ``o`` ``[B, T, H, V]`` in q's dtype and the final state ``[B, H, K, V]`` (float32/float64) or None.
    """
    B, T, H, K, V = check_recurrent_inputs("recurrent_gated_delta_rule", q, k, v, g, initial_state, chunk_size, "head")
    check_beta("recurrent_gated_delta_rule", beta, q)
    dtype, ct = q.dtype, compute_dtype(q)
    scale = K**-0.5 if scale is None else scale
    q, k, v, beta = (x.to(ct) for x in (q, k, v, beta))
    g = q.new_zeros(B, T, H) if g is None else g.to(ct)                     # (B, T, H)
    h = q.new_zeros(B, H, K, V) if initial_state is None else initial_state.to(ct)  # (B, H, K, V)
    outputs = []
    for t in range(T):
        h = h * g[:, t].exp()[:, :, None, None]                             # (B, H, K, V) decay
        k_t = k[:, t]                                                       # (B, H, K)
        recalled = torch.einsum("bhk,bhkv->bhv", k_t, h)                    # (B, H, V) what the state holds for k_t
        delta = beta[:, t].unsqueeze(-1) * (v[:, t] - recalled)             # (B, H, V)
        h = h + k_t.unsqueeze(-1) * delta.unsqueeze(-2)                     # (B, H, K, V) write the correction
        outputs.append(torch.einsum("bhk,bhkv->bhv", q[:, t] * scale, h))   # (B, H, V)
    o = torch.stack(outputs, dim=1) if T else v.new_zeros(B, 0, H, V)       # (B, T, H, V)
    return o.to(dtype), (h if output_final_state else None)
