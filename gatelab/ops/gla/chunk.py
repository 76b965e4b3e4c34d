"""Gated linear attention, chunkwise-parallel form built from matmuls, stable under strong decay.

Legend: B batch, H heads, N chunks, C chunk size, P block pairs, b half-block size, K key dim, V value dim.
Every ``exp`` below has a non-positive argument, so nothing overflows in float32 however strong the decay
(the derivation is in README.md beside this file).
"""
from __future__ import annotations

import torch

from .._chunk import from_chunks, pass_states, to_chunks
from .._common import check_recurrent_inputs, compute_dtype
from ..backend import resolve
from ..fla_backend import fla_chunk_gla

SMALL = 8  # below this many rows per block, products are formed elementwise rather than by matmul


def _levels(chunk_size: int) -> tuple[int, list[int]]:
    """Halve the chunk while it is even: the (odd) base block size and each level's half-block size."""
    halves, b = [], chunk_size
    while b % 2 == 0:
        b //= 2
        halves.append(b)
    return b, halves


def _mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b`` over the last two dims; elementwise when ``a`` has few rows, where batched matmuls of tiny
    matrices are slow on a CPU."""
    if a.shape[-2] >= SMALL:
        return a @ b
    return (a.unsqueeze(-1) * b.unsqueeze(-3)).sum(-2)


def _base_output(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, G: torch.Tensor, base: int) -> torch.Tensor:
    """The output from pairs inside each base block: the diagonal when base is 1, else elementwise log space."""
    *lead, C, K = q.shape
    if base == 1:
        return (q * k).sum(-1, keepdim=True) * v                               # (B, H, N, C, V)
    nb = C // base
    qb, kb, Gb = (x.view(*lead, nb, base, K) for x in (q, k, G))               # (B, H, N, nb, base, K)
    causal = torch.ones(base, base, dtype=torch.bool, device=q.device).tril()  # (base, base) j <= i
    diff = (Gb.unsqueeze(-2) - Gb.unsqueeze(-3)).masked_fill(~causal.unsqueeze(-1), float("-inf"))
    A = (qb.unsqueeze(-2) * kb.unsqueeze(-3) * diff.exp()).sum(-1)             # (B, H, N, nb, base, base)
    return (A @ v.view(*lead, nb, base, -1)).view(*lead, C, -1)                # (B, H, N, C, V)


def _halves(x: torch.Tensor, b: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The left and right halves of every block of ``2b`` rows: views ``[..., P, b, D]`` of ``[..., C, D]``."""
    *lead, C, D = x.shape
    pairs = x.view(*lead, C // (2 * b), 2, b, D)                               # (B, H, N, P, 2, b, D)
    return pairs[..., 0, :, :], pairs[..., 1, :, :]


def _level(q: torch.Tensor, k: torch.Tensor, G: torch.Tensor, b: int):
    """One halving level: the re-referenced queries of the right halves and keys of the left halves
    ``[B, H, N, P, b, K]``, their scores ``[B, H, N, P, b, b]``, and the two exponentials."""
    G_left, G_right = _halves(G, b)
    g_ref = G_right[..., :1, :]                                                # (B, H, N, P, 1, K)
    eq, ek = (G_right - g_ref).exp(), (g_ref - G_left).exp()                   # both exponents <= 0
    q_r, k_l = _halves(q, b)[1] * eq, _halves(k, b)[0] * ek
    return q_r, k_l, _mm(q_r, k_l.transpose(-1, -2)), eq, ek


class _IntraChunk(torch.autograd.Function):
    """``intra_chunk_output`` with its backward written out: each level's gradients are added into views of
    whole-size gradient tensors, where autograd would build a zero-filled whole-size tensor per slice and level."""

    @staticmethod
    def forward(ctx, q, k, v, G):
        *lead, C, _ = q.shape
        base, halves = _levels(C)
        o = _base_output(q, k, v, G, base)                                     # (B, H, N, C, V)
        levels = []
        for b in halves:
            levels.append(_level(q, k, G, b))                                  # kept for the backward
            _halves(o, b)[1].add_(_mm(levels[-1][2], _halves(v, b)[0]))        # right halves += A v_left
        # saved through autograd (not on ctx), so they are freed with the graph and saved-tensor hooks see them
        ctx.save_for_backward(q, k, v, G, *(t for level in levels for t in level))
        return o

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, do):
        q, k, v, G, *saved = ctx.saved_tensors
        levels = [saved[i:i + 5] for i in range(0, len(saved), 5)]            # (q_r, k_l, A, eq, ek) per level
        base, halves = _levels(q.shape[-2])
        do = do.contiguous()
        if base == 1:                                                          # o = (q . k) v, row by row
            s = (q * k).sum(-1, keepdim=True)                                  # (B, H, N, C, 1)
            ds = (do * v).sum(-1, keepdim=True)
            dq, dk, dv, dG = ds * k, ds * q, do * s, torch.zeros_like(G)
        else:
            with torch.enable_grad():
                leaves = [x.detach().requires_grad_() for x in (q, k, v, G)]
                dq, dk, dv, dG = torch.autograd.grad(_base_output(*leaves, base), leaves, do)
        for b, (q_r, k_l, A, eq, ek) in zip(halves, levels, strict=True):
            do_r, v_l = _halves(do, b)[1], _halves(v, b)[0]                    # (B, H, N, P, b, V)
            dA = _mm(do_r, v_l.transpose(-1, -2))                              # (B, H, N, P, b, b)
            _halves(dv, b)[0].add_(_mm(A.transpose(-1, -2), do_r))
            dq_r, dk_l = _mm(dA, k_l), _mm(dA.transpose(-1, -2), q_r)          # (B, H, N, P, b, K)
            _halves(dq, b)[1].add_(dq_r * eq)
            _halves(dk, b)[0].add_(dk_l * ek)
            t_q, t_k = dq_r * q_r, dk_l * k_l          # d/dG of q e^{G - g_ref} and of k e^{g_ref - G}
            dG_left, dG_right = _halves(dG, b)
            dG_right.add_(t_q)
            dG_left.sub_(t_k)
            dG_right[..., :1, :].add_(t_k.sum(-2, keepdim=True) - t_q.sum(-2, keepdim=True))   # through g_ref
        return dq, dk, dv, dG


def intra_chunk_output(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
    """The intra-chunk output ``o_i = sum_{j<=i} (sum_d q_id k_jd exp(G_id - G_jd)) v_j`` of every chunk.

    q, k, G: ``[B, H, N, C, K]`` (G the inclusive cumulative log gate within the chunk); v: ``[B, H, N, C, V]``.
    The chunk is halved recursively. At each level, the queries of every right half meet the keys of its left
    half in one product after both are re-referenced to the right half's first gate G_r: ``q exp(G - G_r)`` and
    ``k exp(G_r - G)``, both exponents <= 0 because G only decreases. Pairs inside the odd-sized base blocks
    (single tokens for power-of-two chunks) are computed directly. Every (query, key) pair is counted once.
    The backward is written out (``_IntraChunk``); the inputs must be contiguous.
    """
    return _IntraChunk.apply(q, k, v, G)


def chunk_gla(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    g: torch.Tensor,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    chunk_size: int = 64,
    backend: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Gated linear attention (Yang et al. 2023, arXiv 2312.06635), chunkwise parallel; equals ``recurrent_gla``.

    Args:
        q, k: ``[B, T, H, K]``.
        v: ``[B, T, H, V]``.
        g: ``[B, T, H, K]`` per-channel log forget gates (``<= 0``).
        scale: multiplies q; default ``K ** -0.5``.
        initial_state: ``[B, H, K, V]`` or None (zeros).
        output_final_state: also return the state after the last token.
        chunk_size: tokens per chunk (any positive integer; T need not be a multiple).
        backend: ``"torch"`` (this chunked form), ``"fla"`` (flash-linear-attention's kernel, CUDA) or ``"auto"``
            (fla for CUDA tensors when installed, else torch); None: the default set by ``use_backend``
            (``gatelab/ops/backend.py``; the mapping in ``gatelab/ops/fla_backend.py``).

    Returns:
        ``o`` ``[B, T, H, V]`` in q's dtype, and the final state ``[B, H, K, V]`` (float32 or float64) or None.
    """
    if resolve("chunk_gla", backend, q) == "fla":
        return fla_chunk_gla(q, k, v, g=g, scale=scale, initial_state=initial_state,
                             output_final_state=output_final_state, chunk_size=chunk_size)
    _, T, _, K, _ = check_recurrent_inputs("chunk_gla", q, k, v, g, initial_state, chunk_size, "channel")
    dtype, ct = q.dtype, compute_dtype(q)
    scale = K**-0.5 if scale is None else scale
    q, k, v, g = (to_chunks(x, chunk_size, ct) for x in (q * scale, k, v, g))  # (B, H, N, C, K|V)
    G = g.cumsum(dim=-2)                                               # (B, H, N, C, K) inclusive, within chunk
    o_inter, h = pass_states(q, k, v, G, initial_state)
    o = intra_chunk_output(q, k, v, G) + o_inter                       # (B, H, N, C, V)
    return from_chunks(o, T).to(dtype), (h if output_final_state else None)
