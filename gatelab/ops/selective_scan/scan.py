"""A first-order linear recurrence along time, as a two-level chunked scan done in place.

Legend: B batch, T time (a multiple of the chunk size), M chunks, C chunk size, ``...`` any trailing dims.
"""
from __future__ import annotations

import torch


def linear_scan_(coef: torch.Tensor, x: torch.Tensor, chunk_size: int, reverse: bool = False) -> torch.Tensor:
    """Overwrite ``x`` with the solution of ``h_t = coef_t * h_{t-1} + x_t`` (``h_{-1} = 0``), or with ``reverse``
    of its adjoint ``g_t = coef_{t+1} * g_{t+1} + x_t`` (``g_T = 0``); return ``x``.

    ``coef`` and ``x`` are ``[B, T, ...]`` with T a multiple of ``chunk_size``; ``x`` must own its memory. The
    scan is the classic two-level one, with every step vectorised over all chunks at once:

    1. a scan inside every chunk from a zero start (``C`` steps, each over ``[B, M, ...]``);
    2. the chunks' start states, handed on once per chunk (``M`` steps over ``[B, ...]``);
    3. each start state carried through its chunk by the running product of ``coef`` and added (``C`` steps).

    Each element is read and written a constant number of times, and only products of ``coef`` are formed, so
    decays in ``[0, 1]`` never overflow however strong they are.
    """
    Bt, T = x.shape[:2]
    M, C = T // chunk_size, chunk_size
    a = coef.view(Bt, M, C, *coef.shape[2:])                                         # (B, M, C, ...)
    h = x.view(Bt, M, C, *x.shape[2:])                                               # (B, M, C, ...)
    if reverse:
        for i in range(C - 2, -1, -1):                                               # local adjoints from zero
            h[:, :, i].addcmul_(a[:, :, i + 1], h[:, :, i + 1])
        if M > 1:
            through = a[:, :, 1:].prod(dim=2)                                        # (B, M, ...) chunk's own decay
            incoming = torch.empty_like(h[:, :-1, 0])                                # (B, M-1, ...) from the right
            carry = torch.zeros_like(h[:, 0, 0])                                     # (B, ...)
            for m in range(M - 1, 0, -1):
                carry = a[:, m, 0] * torch.addcmul(h[:, m, 0], through[:, m], carry)
                incoming[:, m - 1] = carry
            for i in range(C - 1, -1, -1):                                           # carry it through each chunk
                h[:, :-1, i].add_(incoming)
                incoming.mul_(a[:, :-1, i])
        return x
    for i in range(1, C):                                                            # local states from zero
        h[:, :, i].addcmul_(a[:, :, i], h[:, :, i - 1])
    if M > 1:
        through = a.prod(dim=2)                                                      # (B, M, ...) chunk's decay
        starts = torch.empty_like(h[:, 1:, 0])                                       # (B, M-1, ...) entering state
        carry = torch.zeros_like(h[:, 0, 0])                                         # (B, ...)
        for m in range(M - 1):
            carry = torch.addcmul(h[:, m, -1], through[:, m], carry)
            starts[:, m] = carry
        for i in range(C):                                                           # carry it through each chunk
            starts.mul_(a[:, 1:, i])
            h[:, 1:, i].add_(starts)
    return x
