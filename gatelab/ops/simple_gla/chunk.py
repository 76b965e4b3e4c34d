"""Linear attention with a per-head scalar decay, chunkwise parallel: every term is a matmul.

Legend: B batch, T time, H heads, N chunks, C chunk size, K key dim, V value dim.
"""
from __future__ import annotations

import torch

from .._chunk import from_chunks, pass_states, to_chunks
from .._common import check_recurrent_inputs, compute_dtype
from ..backend import needs_backward, resolve
from ..fla_backend import fla_chunk_simple_gla


def chunk_simple_gla(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    g: torch.Tensor | None = None,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    chunk_size: int = 64,
    backend: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Chunkwise form of ``recurrent_simple_gla`` (same arguments and results, and ``backend`` as in ``chunk_gla``).

    With a scalar decay per head the intra-chunk term is ``((q k^T) * D) v`` with the decay matrix
    ``D_ij = exp(G_i - G_j)`` for ``j <= i`` (else 0): a C x C matrix per head whose exponents are all <= 0, so it
    needs no special care under strong decay. The inter-chunk part is shared with GLA (``pass_states``).
    """
    backward = g is not None and needs_backward(q, k, v, g, initial_state)   # (fla refuses it on some GPUs)
    if resolve("chunk_simple_gla", backend, q, gated_backward=backward) == "fla":
        return fla_chunk_simple_gla(q, k, v, g=g, scale=scale, initial_state=initial_state,
                                    output_final_state=output_final_state, chunk_size=chunk_size)
    B, T, H, K, _ = check_recurrent_inputs("chunk_simple_gla", q, k, v, g, initial_state, chunk_size, "head")
    dtype, ct = q.dtype, compute_dtype(q)
    scale = K**-0.5 if scale is None else scale
    g = q.new_zeros(B, T, H) if g is None else g
    q, k, v, g = (to_chunks(x, chunk_size, ct) for x in (q * scale, k, v, g.unsqueeze(-1)))  # (B, H, N, C, *)
    G = g.cumsum(dim=-2)                                                   # (B, H, N, C, 1)
    causal = torch.ones(chunk_size, chunk_size, dtype=torch.bool, device=q.device).tril()   # (C, C)
    decay = (G - G.transpose(-1, -2)).masked_fill(~causal, float("-inf")).exp()             # (B, H, N, C, C)
    o_inter, h = pass_states(q, k, v, G, initial_state)
    o = ((q @ k.transpose(-1, -2)) * decay) @ v + o_inter                  # (B, H, N, C, V)
    return from_chunks(o, T).to(dtype), (h if output_final_state else None)
