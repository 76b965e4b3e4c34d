"""Combiner's factorised attention, reference form: the explicit ``T x T`` attention matrix built one query at a
time from the regions of its variant (the definition; slow, for tests at small sizes).

Legend: B batch, T length, H heads, D head dim, L block (region) size.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

Variant = Literal["fixed", "axial", "logsparse"]


@dataclass(frozen=True)
class Summary:
    """One summarised region of a query: positions ``region``; its summary query and key are the max-pool of the
    region's queries and keys (``anchor`` None) or the query and key of the token ``anchor``."""

    region: tuple[int, ...]
    anchor: int | None = None


def combiner_structure(i: int, variant: Variant, block_size: int) -> tuple[list[int], list[Summary]]:
    """The positions query ``i`` attends to directly, and the regions it attends to through their summaries.
    Together they partition ``0..i`` (full support)."""
    L = block_size
    if variant == "logsparse":
        spans = []
        for level in range(i.bit_length()):
            if (i >> level) & 1:                                   # bit ``level`` of i: the span just before
                start = ((i >> level) - 1) << level
                spans.append(Summary(tuple(range(start, start + (1 << level)))))
        return [i], spans
    block, col = divmod(i, L)
    direct = list(range(block * L, i + 1))                         # the causal prefix of i's own block (row)
    anchor = (lambda r: r * L + col) if variant == "axial" else (lambda r: None)
    return direct, [Summary(tuple(range(r * L, (r + 1) * L)), anchor(r)) for r in range(block)]


def combiner_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, variant: Variant = "fixed",
                       block_size: int = 32, scale: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``o [B, T, H, D]`` and the factorised attention matrix ``A [B, H, T, T]`` (``o_i = sum_j A_ij v_j``) from
    q, k, v ``[B, T, H, D]``.

    Row i: one softmax over the logits ``scale q_i . k_j`` of its direct positions j and ``scale q_i . k_R`` of
    its summaries R gives ``p(j | i)`` and ``p(R | i)``; each j in R gets ``p(R | i) q(j | R)``, with ``q(j | R) =
    softmax_{j in R}(scale q_R . k_j)`` the region's local expectation under its summary query q_R."""
    B, T, H, D = q.shape
    scale = D ** -0.5 if scale is None else scale
    rows = []
    for i in range(T):
        direct, summaries = combiner_structure(i, variant, block_size)
        keys, inner = [k[:, direct]], []                                              # (B, n, H, D)
        for s in summaries:
            region = list(s.region)
            kr, qr = k[:, region], q[:, region]                                       # (B, |R|, H, D)
            q_R = qr.amax(1) if s.anchor is None else q[:, s.anchor]                  # (B, H, D)
            k_R = kr.amax(1) if s.anchor is None else k[:, s.anchor]
            keys.append(k_R.unsqueeze(1))
            inner.append(torch.einsum("bhd,brhd->bhr", q_R, kr).mul(scale).softmax(-1))   # (B, H, |R|)
        logits = torch.einsum("bhd,bnhd->bhn", q[:, i], torch.cat(keys, 1)) * scale    # (B, H, n + #R)
        p = logits.softmax(-1)
        n = len(direct)
        row = q.new_zeros(B, H, T).index_add(2, torch.tensor(direct), p[..., :n])     # (B, H, T)
        for r, s in enumerate(summaries):
            row = row.index_add(2, torch.tensor(s.region), p[..., n + r:n + r + 1] * inner[r])
        rows.append(row)
    A = torch.stack(rows, 2)                                                          # (B, H, T, T)
    return torch.einsum("bhij,bjhd->bihd", A, v), A
