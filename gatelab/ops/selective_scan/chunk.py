"""Selective scan (Mamba-1), chunkwise parallel: a log-depth scan inside chunks, a hand-off between chunks.

Legend: B batch, T time, E channels, N state size, M chunks, C chunk size.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange

from .._common import compute_dtype, pad_time
from .ref import check_scan_inputs


def _shift(x: torch.Tensor, by: int) -> torch.Tensor:
    """``x`` moved ``by`` steps later along dim 2 (chunk positions), zeros entering at the front."""
    return F.pad(x, (0, 0, 0, 0, by, 0))[:, :, : x.shape[2]]


def chunk_selective_scan(
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
    """Chunkwise form of ``recurrent_selective_scan`` (same arguments and results; README.md has the math).

    With ``a_t = dt_t A`` (log decay, ``<= 0``) and ``b_t = dt_t x_t B_t``, each chunk runs a Hillis-Steele
    scan of the pairs ``(a, b)`` under ``(a1, b1) then (a2, b2) = (a1 + a2, e^{a2} b1 + b2)``: log2(C) steps
    of elementwise work on ``[B, M, C, E, N]``, every exponent ``<= 0``. The state entering each chunk is then
    handed on once per chunk, and ``y_t = C_t (h_t^local + e^{A_t} h_start) + D x_t``.
    """
    check_scan_inputs("chunk_selective_scan", x, dt, A, B, C, D, initial_state)
    dtype, ct = x.dtype, compute_dtype(x)
    Bt, T, E = x.shape
    N = A.shape[-1]
    x, dt, A, B, C = (t.to(ct) for t in (x, dt, A, B, C))
    a = pad_time(dt, chunk_size).unsqueeze(-1) * A                                  # (B, M*C, E, N) log decays
    b = pad_time((dt * x).unsqueeze(-1) * B.unsqueeze(2), chunk_size)               # (B, M*C, E, N) writes
    a, b = (rearrange(t, "b (m c) e n -> b m c e n", c=chunk_size) for t in (a, b))  # (B, M, C, E, N)
    acc, h = a, b
    step = 1
    while step < chunk_size:                                                        # log2(C) steps, not C
        h = h + acc.exp() * _shift(h, step)
        acc = acc + _shift(acc, step)
        step *= 2
    # acc: cumulative log decay from the chunk start; h: the state each token would have from a zero start.
    state = x.new_zeros(Bt, E, N) if initial_state is None else initial_state.to(ct)  # (B, E, N)
    starts = []
    for decay, local in zip(acc[:, :, -1].exp().unbind(1), h[:, :, -1].unbind(1), strict=True):
        starts.append(state)
        state = decay * state + local                                               # (B, E, N)
    h = h + acc.exp() * torch.stack(starts, dim=1).unsqueeze(2)                     # (B, M, C, E, N)
    h = rearrange(h, "b m c e n -> b (m c) e n")[:, :T]                             # (B, T, E, N)
    y = (h * C.unsqueeze(2)).sum(-1)                                                # (B, T, E)
    if D is not None:
        y = y + D.to(ct) * x
    return y.to(dtype), (state if output_final_state else None)
