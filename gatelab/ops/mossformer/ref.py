"""MossFormer's (FLASH's) quadratic-in-groups plus linear-across-groups attention, reference form: one token at a
time, with the running linear-attention state updated at each group's end (readable; slow).

Legend: B batch, T length, H heads, D query/key dim, E value dim, G group size.
"""
from __future__ import annotations

import torch


def recurrent_mossformer_attention(quad_q: torch.Tensor, quad_k: torch.Tensor, lin_q: torch.Tensor,
                                   lin_k: torch.Tensor, v: torch.Tensor, *, chunk_size: int = 256,
                                   initial_state: torch.Tensor | None = None, output_final_state: bool = False
                                   ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``o [B, T, H, E]`` and the linear state ``[B, H, D, E]`` after the last complete group (None unless
    ``output_final_state``) from quad_q, quad_k, lin_q, lin_k ``[B, T, H, D]`` and ``v [B, T, H, E]``; position 0
    starts a group. Token t in group g (its first position t0 = g G):

    ``o_t = sum_{t0 <= j <= t} relu(quad_q_t . quad_k_j / G)^2 v_j + lin_q_t S_g``, with
    ``S_g = initial_state + sum_{j < t0} lin_k_j^T v_j / G`` (the earlier groups, all of each)."""
    B, T, H, D = quad_q.shape
    G = chunk_size
    state = quad_q.new_zeros(B, H, D, v.shape[-1]) if initial_state is None else initial_state   # (B, H, D, E)
    pending = torch.zeros_like(state)                                  # this group's lin_k^T v / G so far
    out = []
    for t in range(T):
        t0 = t - t % G
        scores = torch.einsum("bhd,bjhd->bhj", quad_q[:, t], quad_k[:, t0:t + 1]) / G   # (B, H, t - t0 + 1)
        quad = torch.einsum("bhj,bjhe->bhe", torch.relu(scores) ** 2, v[:, t0:t + 1])   # (B, H, E)
        lin = torch.einsum("bhd,bhde->bhe", lin_q[:, t], state)
        out.append(quad + lin)
        pending = pending + torch.einsum("bhd,bhe->bhde", lin_k[:, t], v[:, t]) / G
        if (t + 1) % G == 0:                                           # the group is complete
            state, pending = state + pending, torch.zeros_like(pending)
    return torch.stack(out, 1), (state if output_final_state else None)                  # (B, T, H, E)
