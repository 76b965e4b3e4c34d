"""Selective scan (Mamba-1), chunkwise parallel, with a hand-written backward that is the same scan run in reverse.

Legend: B batch, T time (padded to whole chunks), E channels, N state size.
"""
from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from .._common import compute_dtype, pad_time
from ..backend import resolve
from .ref import check_scan_inputs
from .scan import linear_scan_


def _decays(dt: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
    return (dt.unsqueeze(-1) * A).exp_()                                            # (B, T, E, N)


class _SelectiveScan(torch.autograd.Function):
    """``h_t = exp(dt_t A) h_{t-1} + dt_t x_t B_t``, ``y_t = h_t C_t``; all inputs padded to whole chunks."""

    @staticmethod
    def forward(ctx, x, dt, A, B, C, h0, chunk_size):
        decay = _decays(dt, A)                                                       # (B, T, E, N)
        h = (dt * x).unsqueeze(-1) * B.unsqueeze(2)                                  # (B, T, E, N) writes
        if h0 is not None:
            h[:, 0].addcmul_(decay[:, 0], h0)
        linear_scan_(decay, h, chunk_size)                                           # (B, T, E, N) states
        ctx.save_for_backward(x, dt, A, B, C, h0, h, decay)
        ctx.chunk_size = chunk_size
        return torch.einsum("bten,btn->bte", h, C), h[:, -1].clone()                 # (B, T, E), (B, E, N)

    @staticmethod
    @once_differentiable
    def backward(ctx, dy, dh_final):
        # One fresh [B, T, E, N] buffer (g), reused in place: on a CPU a new one costs about a pass over it.
        x, dt, A, B, C, h0, h, decay = ctx.saved_tensors
        dy = dy.contiguous()                       # an expanded gradient would make the einsums loop per matrix
        g = dy.unsqueeze(-1) * C.unsqueeze(2)                                        # (B, T, E, N) dL/dh_t direct
        if dh_final is not None:
            g[:, -1].add_(dh_final)
        linear_scan_(decay, g, ctx.chunk_size, reverse=True)                         # (B, T, E, N) dL/dh_t total
        dh0 = None if h0 is None else decay[:, 0] * g[:, 0]                          # (B, E, N)
        g_B = torch.einsum("bten,btn->bte", g, B)                                    # (B, T, E)
        dB = torch.einsum("bte,bten->btn", dt * x, g)                                # (B, T, N)
        dC = torch.einsum("bte,bten->btn", dy, h)                                    # (B, T, N)
        dlog = g.mul_(decay)                                                         # (B, T, E, N) dL/d(dt A) ...
        dlog[:, 1:].mul_(h[:, :-1])                                                  # ... is g_t e^{a_t} h_{t-1}
        if h0 is None:
            dlog[:, 0].zero_()
        else:
            dlog[:, 0].mul_(h0)
        d_dt = torch.einsum("bten,en->bte", dlog, A) + x * g_B                       # (B, T, E)
        dA = dlog.mul_(dt.unsqueeze(-1)).sum((0, 1))                                 # (E, N)
        return dt * g_B, d_dt, dA, dB, dC, dh0, None


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
    backend: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Chunkwise form of ``recurrent_selective_scan`` (same arguments and results; README.md has the math).

    The recurrence ``h_t = exp(dt_t A) h_{t-1} + dt_t x_t B_t`` is solved by a two-level scan (inside every
    chunk at once, then across chunks, then a fix-up), and its gradient by the same scan run backwards over the
    adjoint ``g_t = C_t dy_t + exp(dt_{t+1} A) g_{t+1}``; the sums over channels and state are einsums.
    Inputs are padded with ``dt = 0`` (a decay of exactly 1 and no write), so the final state is the last token's.
    ``backend``: ``auto`` and ``torch`` run this form; flash-linear-attention has no selective-scan kernel, so
    ``fla`` is a ConfigError.
    """
    resolve("chunk_selective_scan", backend, x, has_fla_kernel=False)
    check_scan_inputs("chunk_selective_scan", x, dt, A, B, C, D, initial_state)
    if chunk_size < 1:
        raise ValueError(f"chunk_selective_scan: chunk_size must be a positive integer; got {chunk_size}")
    dtype, ct = x.dtype, compute_dtype(x)
    T = x.shape[1]
    if T == 0:
        state = x.new_zeros(x.shape[0], *A.shape, dtype=ct) if initial_state is None else initial_state.to(ct)
        return x.new_zeros(x.shape), (state if output_final_state else None)
    xp, dtp, Bp, Cp = (pad_time(t.to(ct), chunk_size) for t in (x, dt, B, C))  # (B, T', E) and (B, T', N)
    h0 = None if initial_state is None else initial_state.to(ct)
    y, state = _SelectiveScan.apply(xp, dtp, A.to(ct), Bp, Cp, h0, chunk_size)
    y = y[:, :T]                                                                     # (B, T, E)
    if D is not None:
        y = y + D.to(ct) * x.to(ct)
    return y.to(dtype), (state if output_final_state else None)
