"""(Gated) delta rule, chunkwise: the UT transform turns each chunk's sequential updates into matmuls.

Legend: B batch, T time, H heads, N chunks, C chunk size, K key dim, V value dim.
"""
from __future__ import annotations

import torch

from .._chunk import from_chunks, to_chunks
from .._common import check_recurrent_inputs, compute_dtype
from ..backend import needs_backward, resolve
from ..fla_backend import fla_chunk_gated_delta_rule
from .chunk_function import ChunkDeltaRule
from .ref import check_beta


def chunk_gated_delta_rule(
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
    backend: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Chunkwise form of ``recurrent_gated_delta_rule`` (same arguments and results; README.md has the math), and
    ``backend`` as in ``chunk_gla``.

    Within a chunk the written values are ``U = T (beta V) - T (beta e^G K) S_0`` with
    ``T = (I + A)^{-1}``, ``A_ij = beta_i (k_i . k_j) e^{G_i - G_j}`` for ``j < i`` (a unit lower-triangular
    solve per chunk). Then ``O = (Q e^G) S_0 + ((Q K^T) * D) U`` and ``S_C = e^{G_C} S_0 + (K e^{G_C - G})^T U``.
    Every exponent is <= 0.
    """
    backward = needs_backward(q, k, v, g, beta, initial_state)          # fla refuses its gated backward on some GPUs
    if resolve("chunk_gated_delta_rule", backend, q, gated_backward=backward) == "fla":
        return fla_chunk_gated_delta_rule(q, k, v, g=g, beta=beta, scale=scale, initial_state=initial_state,
                                          output_final_state=output_final_state, chunk_size=chunk_size)
    B, T, H, K, V = check_recurrent_inputs("chunk_gated_delta_rule", q, k, v, g, initial_state, chunk_size, "head")
    check_beta("chunk_gated_delta_rule", beta, q)
    dtype, ct = q.dtype, compute_dtype(q)
    scale = K**-0.5 if scale is None else scale
    C = chunk_size
    g = q.new_zeros(B, T, H) if g is None else g
    # chunks lead (N, B, H, C, D), so the sequential pass reads contiguous per-chunk slices
    q, k, v, g, beta = (to_chunks(x, C, ct, chunks_first=True) for x in (q * scale, k, v, g.unsqueeze(-1),
                                                                          beta.unsqueeze(-1)))
    h0 = q.new_zeros(B, H, K, V) if initial_state is None else initial_state.to(ct)  # (B, H, K, V)
    o, h = ChunkDeltaRule.apply(q, k, v, g, beta, h0)                       # (N, B, H, C, V), (B, H, K, V)
    return from_chunks(o, T, chunks_first=True).to(dtype), (h if output_final_state else None)
