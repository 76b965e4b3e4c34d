"""Combiner's factorised attention, fast forms: the regions of every query at once with block reshapes (fixed,
axial: ``O(T (L + T/L) D)``, ``O(T sqrt T D)`` at ``L ~ sqrt T``) or one gather per level (logsparse:
``O(T log T D)``). Equal to ``ref.combiner_reference``; the math is in README.md.

Legend: B batch, T length, H heads, D head dim, L block size, n = ceil(T / L) blocks.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .ref import Variant

VARIANTS = ("fixed", "axial", "logsparse")


def _blocks(x: torch.Tensor, L: int) -> torch.Tensor:
    """``x [B, T, H, D]`` zero-padded to ``n L`` positions, as ``[B, n, L, H, D]``. A padded block is never the
    summary of a real query (summaries are of earlier, complete blocks)."""
    B, T, H, D = x.shape
    n = math.ceil(T / L)
    return F.pad(x, (0, 0, 0, 0, 0, n * L - T)).view(B, n, L, H, D)


def _earlier(n: int, device: torch.device) -> torch.Tensor:
    """``[n, n]`` True where block m is not before block b (masked in the summaries' logits)."""
    idx = torch.arange(n, device=device)
    return idx[None, :] >= idx[:, None]


def _blockwise(q, k, v, L: int, scale: float, axial: bool) -> torch.Tensor:
    B, T, H, D = q.shape
    qb, kb, vb = _blocks(q, L), _blocks(k, L), _blocks(v, L)                          # (B, n, L, H, D)
    n = qb.shape[1]
    within = torch.einsum("bnihd,bnjhd->bnhij", qb, kb) * scale                       # (B, n, H, L, L)
    future = torch.ones(L, L, dtype=torch.bool, device=q.device).triu(1)
    local = within.masked_fill(future, float("-inf"))
    if axial:   # row m's summary for column i: query q_(m,i) over all of row m; key k_(m,i)
        v_sum = torch.einsum("bnhij,bnjhd->bnihd", within.softmax(-1), vb)            # (B, n, L, H, D)
        prev = torch.einsum("bnihd,bmihd->bnhim", qb, kb) * scale                     # (B, n, H, L, n)
    else:       # block m's summary: max-pooled query over block m, max-pooled key
        q_sum, k_sum = qb.amax(2), kb.amax(2)                                         # (B, n, H, D)
        inner = torch.einsum("bmhd,bmjhd->bmhj", q_sum, kb).mul(scale).softmax(-1)    # (B, n, H, L)
        v_sum = torch.einsum("bmhj,bmjhd->bmhd", inner, vb)                           # (B, n, H, D)
        prev = torch.einsum("bnihd,bmhd->bnhim", qb, k_sum) * scale                   # (B, n, H, L, n)
    prev = prev.masked_fill(_earlier(n, q.device)[None, :, None, None, :], float("-inf"))
    p = torch.cat([local, prev], -1).softmax(-1)                                      # (B, n, H, L, L + n)
    o = torch.einsum("bnhij,bnjhd->bnihd", p[..., :L], vb)                            # (B, n, L, H, D)
    if axial:
        o = o + torch.einsum("bnhim,bmihd->bnihd", p[..., L:], v_sum)
    else:
        o = o + torch.einsum("bnhim,bmhd->bnihd", p[..., L:], v_sum)
    return o.reshape(B, n * L, H, D)[:, :T]


def _logsparse(q, k, v, scale: float) -> torch.Tensor:
    """Level l reads the ``2^l``-blocks: a query in odd block b attends to block b - 1's summary, one shift of the
    blocks' summaries (no gather)."""
    B, T, H, D = q.shape
    logits, summaries = [(q * k).sum(-1) * scale], []                                # (B, T, H)
    for level in range((T - 1).bit_length()):
        c = 1 << level
        qb, kb, vb = (_blocks(x, c) for x in (q, k, v))                               # (B, m, c, H, D)
        q_sum, k_sum = qb.amax(2), kb.amax(2)                                         # (B, m, H, D)
        inner = torch.einsum("bmhd,bmjhd->bmhj", q_sum, kb).mul(scale).softmax(-1)    # (B, m, H, c)
        v_sum = torch.einsum("bmhj,bmjhd->bmhd", inner, vb)
        k_prev, v_prev = (F.pad(x, (0, 0, 0, 0, 1, -1)) for x in (k_sum, v_sum))      # block b -> b - 1's
        logit = torch.einsum("bmchd,bmhd->bmch", qb, k_prev) * scale                  # (B, m, c, H)
        even = torch.arange(qb.shape[1], device=q.device) % 2 == 0                    # bit l of i unset
        logit = logit.masked_fill(even[None, :, None, None], float("-inf"))
        logits.append(logit.reshape(B, -1, H)[:, :T])
        summaries.append(v_prev)
    p = torch.stack(logits, -1).softmax(-1)                                           # (B, T, H, 1 + levels)
    o = p[..., 0, None] * v
    for level, v_prev in enumerate(summaries):
        pl = _blocks(p[..., level + 1, None], 1 << level)[..., 0]                     # (B, m, c, H)
        o = o + torch.einsum("bmch,bmhd->bmchd", pl, v_prev).reshape(B, -1, H, D)[:, :T]
    return o


def combiner_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, variant: Variant = "fixed",
                       block_size: int = 32, scale: float | None = None) -> torch.Tensor:
    """Causal Combiner attention ``o [B, T, H, D]`` from q, k, v ``[B, T, H, D]`` (``scale`` default
    ``D ** -0.5``). ``variant``: ``'fixed'`` and ``'axial'`` use blocks (rows) of ``block_size``; ``'logsparse'``
    ignores it. Position i's output depends only on positions <= i, so a prefix's outputs are the prefix of the
    whole's."""
    if variant not in VARIANTS:
        raise ValueError(f"combiner variant {variant!r} is not one of {VARIANTS}")
    if block_size < 1:
        raise ValueError(f"combiner block_size must be >= 1, got {block_size}")
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    if variant == "logsparse":
        return _logsparse(q, k, v, scale)
    return _blockwise(q, k, v, block_size, scale, axial=variant == "axial")
