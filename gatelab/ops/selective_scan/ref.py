"""Selective scan (Mamba-1), reference recurrence in Mamba's own terms, one token at a time.

Legend: B batch, T time, E channels (the inner width), N state size per channel.
"""
from __future__ import annotations

import torch

from .._common import check_sign, compute_dtype


def check_scan_inputs(name: str, x, dt, A, B, C, D, initial_state) -> None:
    Bt, T, E = x.shape
    N = A.shape[-1]
    expected = {"dt": (dt, (Bt, T, E)), "A": (A, (E, N)), "B": (B, (Bt, T, N)), "C": (C, (Bt, T, N))}
    if D is not None:
        expected["D"] = (D, (E,))
    if initial_state is not None:
        expected["initial_state"] = (initial_state, (Bt, E, N))
    for arg, (tensor, shape) in expected.items():
        if tuple(tensor.shape) != shape:
            raise ValueError(f"{name}: {arg} must be {shape} for x {tuple(x.shape)} and A {tuple(A.shape)}; "
                             f"got {tuple(tensor.shape)}")
    check_sign(name, "A", A, nonpositive=True, what="<= 0 (the decay exp(dt A) must not grow)")
    check_sign(name, "dt", dt, nonpositive=False, what=">= 0 (step sizes, e.g. softplus(x))")


def recurrent_selective_scan(
    x: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    *,
    D: torch.Tensor | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    chunk_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Mamba's selective SSM (Gu & Dao 2023, arXiv 2312.00752), token by token.

    ``h_t = exp(dt_t A) * h_{t-1} + dt_t B_t x_t`` per channel (state ``[E, N]``), ``y_t = h_t C_t + D x_t``.

    Args:
        x: ``[B, T, E]`` inputs; dt: ``[B, T, E]`` positive step sizes (after softplus); A: ``[E, N]`` (negative);
        B, C: ``[B, T, N]`` input and output projections of the state; D: ``[E]`` skip or None;
        initial_state: ``[B, E, N]`` or None. chunk_size: unused here (one signature for both forms).

    Returns:
        y ``[B, T, E]`` in x's dtype and the final state ``[B, E, N]`` (float32/float64) or None.
    """
    check_scan_inputs("recurrent_selective_scan", x, dt, A, B, C, D, initial_state)
    dtype, ct = x.dtype, compute_dtype(x)
    x, dt, A, B, C = (t.to(ct) for t in (x, dt, A, B, C))
    Bt, T, E = x.shape
    h = x.new_zeros(Bt, E, A.shape[-1]) if initial_state is None else initial_state.to(ct)  # (B, E, N)
    ys = []
    for t in range(T):
        decay = (dt[:, t].unsqueeze(-1) * A).exp()                                  # (B, E, N)
        write = (dt[:, t] * x[:, t]).unsqueeze(-1) * B[:, t].unsqueeze(1)            # (B, E, N)
        h = decay * h + write
        ys.append((h * C[:, t].unsqueeze(1)).sum(-1))                                # (B, E)
    y = torch.stack(ys, dim=1) if T else x.new_zeros(Bt, 0, E)                       # (B, T, E)
    if D is not None:
        y = y + D.to(ct) * x
    return y.to(dtype), (h if output_final_state else None)
