"""Kernelized attention with a relative positional encoding, reference form: the explicit ``[Tq, Tk]`` matrix of
``e^{b_{i-j}} phi(q_i).phi(k_j)`` for ``j <= i``. O(T^2); for tests and for decoding (queries after a cache).

Legend: B batch, Tq queries, Tk keys, H heads, M features, V value dim. q and k are the positive features.
"""
from __future__ import annotations

import torch

from .._common import compute_dtype
from .checks import check_kernel_rpe_inputs

LOG_WEIGHT_FLOOR = -80.0


def lag_weights(bias: torch.Tensor) -> torch.Tensor:
    """The weight of each lag ``e^{b - max b}`` per head, ``bias [H, T]`` -> ``[H, T]``: the shift by the head's
    largest bias (it cancels in the ratio) keeps every weight <= 1, and the exponent is floored at
    ``LOG_WEIGHT_FLOOR`` (-80): in float32 ``e^x`` is 0 below about -103, so a query whose every lag lies that far
    below the largest bias would read 0 / 0. The floor keeps such a query a weighted mean of its values (exact
    when its lags' biases are equal); lags floored get no gradient."""
    return (bias - bias.max(-1, keepdim=True).values.detach()).clamp(min=LOG_WEIGHT_FLOOR).exp()


def quadratic_kernel_rpe(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, bias: torch.Tensor,
                         block_size: int = 64) -> torch.Tensor:
    """``o_i = sum_{j<=i} e^{b_{i-j}} (phi_q_i . phi_k_j) v_j / sum_{j<=i} e^{b_{i-j}} (phi_q_i . phi_k_j)``.

    Args:
        q: ``[B, Tq, H, M]`` positive query features, the last Tq of the Tk positions (Tq = Tk: the whole
            sequence; Tq < Tk: new tokens after Tk - Tq cached ones).
        k: ``[B, Tk, H, M]`` positive key features; v: ``[B, Tk, H, V]``.
        bias: ``[H, Tk]`` the log weight ``b_d`` of each lag d = i - j in [0, Tk).
        block_size: unused here (one signature for both forms).

    Returns:
        ``o [B, Tq, H, V]`` in q's dtype.
    """
    B, Tq, H, M, Tk, V = check_kernel_rpe_inputs("quadratic_kernel_rpe", q, k, v, bias, block_size)
    if Tk == 0:
        return v.new_zeros(B, 0, H, V, dtype=q.dtype)
    dtype, ct = q.dtype, compute_dtype(q)
    q, k, v, bias = (x.to(ct) for x in (q, k, v, bias))
    i = torch.arange(Tk - Tq, Tk, device=q.device)[:, None]                         # (Tq, 1) query positions
    lag = i - torch.arange(Tk, device=q.device)[None, :]                            # (Tq, Tk)
    weights = lag_weights(bias)                                                     # (H, Tk): e^{b - max b}
    toeplitz = weights[:, lag.clamp(min=0)] * (lag >= 0)                            # (H, Tq, Tk)
    scores = torch.einsum("bihm,bjhm->bhij", q, k) * toeplitz                       # (B, H, Tq, Tk)
    o = torch.einsum("bhij,bjhv->bihv", scores, v)                                  # (B, Tq, H, V)
    return (o / scores.sum(-1).transpose(1, 2)[..., None]).to(dtype)
