"""ATLAS's Omega rule with its Muon-style update, reference form: one token at a time.

Legend: B batch, T time, H heads, F feature dim of phi(q), phi(k), D memory hidden dim, V value dim, c window.
"""
from __future__ import annotations

import torch

from .._common import compute_dtype
from .memory import newton_schulz, read, window_gradient
from .state import AtlasState, check_inputs, initial


def recurrent_atlas(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    g: torch.Tensor,
    beta: torch.Tensor,
    g_momentum: torch.Tensor,
    gamma: torch.Tensor,
    w1: torch.Tensor,
    w2: torch.Tensor,
    window: int = 1,
    ns_steps: int = 5,
    residual: bool = True,
    initial_state: AtlasState | None = None,
    output_final_state: bool = False,
    chunk_size: int = 1,
) -> tuple[torch.Tensor, AtlasState | None]:
    """ATLAS (Behrouz et al. 2025, arXiv 2505.23735): a deep memory trained at test time by the Omega rule.

    At token t (alpha = e^g, theta = e^g_momentum, eta = beta)::

        G_t = grad_M sum_{i=t-c+1}^{t} gamma_i ||M(k_i) - v_i||^2    at M = M_{start(t)}
        S_t = theta_t S_{t-1} + G_t                                 (momentum, per weight matrix)
        M_t = alpha_t M_{t-1} - eta_t NS(S_t)                        (NS: ``ns_steps`` Newton-Schulz iterations)
        o_t = M_t(q_t)

    with ``M(u) = u[:V] + silu(u W1) W2`` (``residual=False``: no ``u[:V]`` term) and M's weights ``(W1, W2)``.
    The window holds the last ``c = window`` tokens; tokens before the first have weight 0. ``start(t)``: with
    ``chunk_size=1`` the previous token (``M_{t-1}``: the rule itself); with chunk_size C, the memory at the start
    of t's chunk of C tokens (chunks counted from the first token the state has seen), the chunk-parallel
    training form of Titans and ATLAS, another function for C > 1. q and k are the feature-mapped queries and
    keys (the layer applies phi); the op takes them as given.

    Args:
        q, k: ``[B, T, H, F]``; v: ``[B, T, H, V]``; g: ``[B, T, H]`` log memory decays (<= 0); beta:
        ``[B, T, H]`` inner learning rates (>= 0); g_momentum: ``[B, T, H]`` log momentum decays (<= 0); gamma:
        ``[B, T, H]`` token weights (>= 0). w1 ``[H, F, D]``, w2 ``[H, D, V]``: the memory before any token
        (used when initial_state is None). initial_state: an ``AtlasState`` or None.

    Returns:
        ``o [B, T, H, V]`` in q's dtype and the final ``AtlasState`` (float32/float64) or None.
    """
    check_inputs("recurrent_atlas", q, k, v, g, beta, g_momentum, gamma, w1, w2, window, ns_steps, chunk_size,
                 residual)
    dtype, ct = q.dtype, compute_dtype(q)
    q, k, v, g, beta, g_momentum, gamma = (x.to(ct).transpose(1, 2) for x in (q, k, v, g, beta, g_momentum, gamma))
    st = initial_state or initial(w1, w2, k.transpose(1, 2), v.transpose(1, 2), window, chunk_size)  # k: (B, H, T, F)
    m1, m2, s1, s2, start1, start2 = (None if x is None else x.to(ct) for x in st[:6])
    win_k, win_v, win_gamma = (x.to(ct) for x in st[6:9])                  # (B, H, c-1, F), (.., V), (B, H, c-1)
    outputs = []
    for t in range(q.shape[2]):
        if chunk_size == 1 or (st.offset + t) % chunk_size == 0:
            start1, start2 = (m1, m2) if chunk_size > 1 else (None, None)
        win_k = torch.cat([win_k, k[:, :, t:t + 1]], dim=2)                # (B, H, c, F) the window ends at t
        win_v = torch.cat([win_v, v[:, :, t:t + 1]], dim=2)                # (B, H, c, V)
        win_gamma = torch.cat([win_gamma, gamma[:, :, t:t + 1]], dim=2)    # (B, H, c)
        at1, at2 = (m1, m2) if chunk_size == 1 else (start1, start2)
        g1, g2 = window_gradient(at1, at2, win_k, win_v, win_gamma, residual)  # (B, H, F, D), (B, H, D, V)
        theta, alpha = g_momentum[:, :, t].exp()[..., None, None], g[:, :, t].exp()[..., None, None]  # (B, H, 1, 1)
        eta = beta[:, :, t][..., None, None]
        s1, s2 = theta * s1 + g1, theta * s2 + g2
        m1 = alpha * m1 - eta * newton_schulz(s1, ns_steps)
        m2 = alpha * m2 - eta * newton_schulz(s2, ns_steps)
        outputs.append(read(m1, m2, q[:, :, t:t + 1], residual))           # (B, H, 1, V)
        win_k, win_v, win_gamma = win_k[:, :, 1:], win_v[:, :, 1:], win_gamma[:, :, 1:]
    T = q.shape[2]
    o = torch.cat(outputs, dim=2) if T else v.new_zeros(v.shape)           # (B, H, T, V)
    final = AtlasState(m1, m2, s1, s2, start1, start2, win_k, win_v, win_gamma, st.offset + T)
    return o.transpose(1, 2).to(dtype), (final if output_final_state else None)
