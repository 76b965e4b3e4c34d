"""The chunk plumbing shared by chunked ops: cut time into chunks, and carry the state from chunk to chunk.

Legend: B batch, T time, H heads, N chunks, C chunk size, K key dim, V value dim.
"""
from __future__ import annotations

import torch
from einops import rearrange

from ._common import pad_time


def to_chunks(x: torch.Tensor, chunk_size: int, dtype: torch.dtype, chunks_first: bool = False) -> torch.Tensor:
    """``[B, T, H, D]`` -> ``[B, H, N, C, D]`` (or ``[N, B, H, C, D]`` with ``chunks_first``) in ``dtype``,
    zero-padding T up to a whole number of chunks; the result is contiguous in its new layout.

    Zero padding is harmless for every op here: padded tokens have k = v = 0 and log gate 0, so they add nothing
    and leave the state as it was.
    """
    layout = "n b h c d" if chunks_first else "b h n c d"
    chunks = rearrange(pad_time(x.to(dtype), chunk_size), f"b (n c) h d -> {layout}", c=chunk_size)
    return chunks.contiguous()  # matmuls on strided views copy every matrix, forward and backward


def from_chunks(o: torch.Tensor, T: int, chunks_first: bool = False) -> torch.Tensor:
    """``[B, H, N, C, V]`` (or ``[N, B, H, C, V]``) -> ``[B, T, H, V]``, dropping the padding."""
    return rearrange(o, f"{'n b h' if chunks_first else 'b h n'} c v -> b (n c) h v")[:, :T]


def pass_states(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, G: torch.Tensor,
                initial_state: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The inter-chunk part of a gated linear recurrence ``S_t = diag(e^{g_t}) S_{t-1} + k_t^T v_t``.

    q, k: ``[B, H, N, C, K]``; v: ``[B, H, N, C, V]``; G: the inclusive cumulative log gate within each chunk,
    ``[B, H, N, C, K]`` (per channel) or ``[B, H, N, C, 1]`` (per head). Returns the contribution of the state
    entering each chunk to its outputs, ``(q e^G) S_n`` ``[B, H, N, C, V]``, and the final state ``[B, H, K, V]``.
    All exponents are <= 0. Only the hand-off ``S <- e^{G_C} S + U_n`` runs sequentially, once per chunk.
    """
    B, H, _, _, K = q.shape
    G_last = G[..., -1:, :]                                            # (B, H, N, 1, K|1) decay over the chunk
    chunk_kv = (k * (G_last - G).exp()).transpose(-1, -2) @ v          # (B, H, N, K, V) each chunk's own update
    chunk_decay = G_last.transpose(-1, -2).exp()                       # (B, H, N, K|1, 1)
    h = q.new_zeros(B, H, K, v.shape[-1]) if initial_state is None else initial_state.to(q.dtype)  # (B, H, K, V)
    starts = []
    for decay, kv in zip(chunk_decay.unbind(2), chunk_kv.unbind(2), strict=True):
        starts.append(h)
        h = decay * h + kv                                             # (B, H, K, V)
    h_start = torch.stack(starts, dim=2)                               # (B, H, N, K, V) state entering each chunk
    return (q * G.exp()) @ h_start, h
