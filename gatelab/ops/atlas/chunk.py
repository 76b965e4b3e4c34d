"""ATLAS's Omega rule, chunk-parallel: within a chunk every token's gradient is taken at the chunk's start memory,
so the gradients, the momentum, the Newton-Schulz steps and the memory updates of all its tokens are batched.

Legend: B batch, H heads, L tokens in a segment (<= C), N = c - 1 + L window-extended tokens, F, D, V as ref.py.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from .._common import compute_dtype
from .memory import errors, newton_schulz, newton_schulz_polynomial
from .state import AtlasState, check_inputs, initial


def decay_matrix(log_decay: torch.Tensor) -> torch.Tensor:
    """``P[..., t, s] = prod_{s < l <= t} e^{log_decay_l}`` for ``s <= t``, else 0, from ``log_decay [..., L]``."""
    cs = log_decay.cumsum(-1)                                              # (..., L)
    causal = torch.ones(cs.shape[-1], cs.shape[-1], dtype=torch.bool, device=cs.device).tril()
    return (cs.unsqueeze(-1) - cs.unsqueeze(-2)).masked_fill(~causal, float("-inf")).exp()  # (..., L, L)


def window_matrix(L: int, window: int, like: torch.Tensor) -> torch.Tensor:
    """``W[s, i] = 1`` when extended token i is in the window of segment token s (``s <= i <= s + c - 1``)."""
    s, i = torch.arange(L, device=like.device).unsqueeze(-1), torch.arange(L + window - 1, device=like.device)
    return ((i >= s) & (i <= s + window - 1)).to(like.dtype)               # (L, N)


def orthogonaliser(s1_prev, carry, ek, wdz, ns_steps: int, eps: float = 1e-7) -> torch.Tensor:
    """``R_t [B, H, L, D, D]`` with ``NS(S1_t) = S1_t R_t``, from S1_t's Gram matrix written through the window's
    kernel: ``S1_t = carry_t S1_prev + ek^T wdz_t`` gives ``S1_t^T S1_t = carry^2 S1_prev^T S1_prev
    + carry (X + X^T) + wdz_t^T (ek ek^T) wdz_t`` with ``X = (ek S1_prev)^T wdz_t``; no ``[F, D]`` per token."""
    D = wdz.shape[-1]
    if ns_steps == 0:
        return torch.eye(D, dtype=wdz.dtype, device=wdz.device).expand(*wdz.shape[:3], D, D)
    c = carry[..., None, None]                                              # (B, H, L, 1, 1)
    cross = (ek @ s1_prev).transpose(-1, -2).unsqueeze(2) @ wdz             # (B, H, L, D, D)
    quad = wdz.transpose(-1, -2) @ ((ek @ ek.transpose(-1, -2)).unsqueeze(2) @ wdz)
    prev = (s1_prev.transpose(-1, -2) @ s1_prev).unsqueeze(2)              # (B, H, 1, D, D)
    gram = c.square() * prev + c * (cross + cross.transpose(-1, -2)) + quad  # (B, H, L, D, D) S1_t^T S1_t
    sq = gram.diagonal(dim1=-2, dim2=-1).sum(-1)[..., None, None] + eps**2  # (B, H, L, 1, 1) ||S1_t||_F^2
    return newton_schulz_polynomial(gram / sq, ns_steps) / sq.sqrt()


def segment(st: AtlasState, q, k, v, g, beta, g_momentum, gamma, window: int, ns_steps: int, residual: bool,
            chunk_size: int) -> tuple[torch.Tensor, AtlasState]:
    """Run the L <= C tokens of one chunk (or of the rest of a chunk the state is inside); inputs ``[B, H, L, .]``.
    W2's momentum and memory are formed per token (``[D, V]``); W1's (``[F, D]``, F the large feature dim) only
    through products with the window's and the queries' features, and at the segment's end."""
    L = q.shape[2]
    at_start = chunk_size == 1 or st.offset % chunk_size == 0
    at1, at2 = (st.w1, st.w2) if at_start else (st.start1, st.start2)     # where this chunk's gradients are taken
    ek = torch.cat([st.window_k, k], dim=2)                                # (B, H, N, F)
    ev = torch.cat([st.window_v, v], dim=2)                                # (B, H, N, V)
    eg = torch.cat([st.window_gamma, gamma], dim=2)                        # (B, H, N)
    e = errors(at1, at2, ek, ev, eg, residual)                             # per token, all at the chunk's start
    weights = decay_matrix(g_momentum) @ window_matrix(L, window, q)       # (B, H, L, N): token i's share of S_t
    carry = g_momentum.cumsum(-1).exp()                                    # (B, H, L) theta products since start
    step = decay_matrix(g) * beta.unsqueeze(-2)                            # (B, H, L, L): alpha products x eta_s
    keep = g.cumsum(-1).exp()                                              # (B, H, L)
    # W2: S2_t = carry_t S2_prev + sum_i w_ti a_i^T de_i, M2_t = keep_t M2_prev - sum_s step_ts NS(S2_s)
    s2 = carry[..., None, None] * st.s2.unsqueeze(2) + e.a.transpose(-1, -2).unsqueeze(2) @ (
        weights.unsqueeze(-1) * e.de.unsqueeze(2))                         # (B, H, L, D, V)
    m2 = keep[..., None, None] * st.w2.unsqueeze(2) - torch.einsum("bhts,bhsdv->bhtdv", step,
                                                                   newton_schulz(s2, ns_steps))
    # W1: S1_t = carry_t S1_prev + ek^T wdz_t, NS(S1_t) = S1_t R_t; read q_t M1_t = keep_t q_t M1_prev
    #     - sum_s step_ts (carry_s q_t S1_prev + sum_i w_si (q_t . u_i) dz_i) R_s
    wdz = weights.unsqueeze(-1) * e.dz.unsqueeze(2)                        # (B, H, L, N, D) w_ti dz_i
    R = orthogonaliser(st.s1, carry, ek, wdz, ns_steps)                    # (B, H, L, D, D)
    kqu = q @ ek.transpose(-1, -2)                                         # (B, H, L, N) phi(q_t) . phi(k_i)
    qs = carry[:, :, None, :, None] * (q @ st.s1).unsqueeze(3) + (kqu.unsqueeze(3) * weights.unsqueeze(2)
                                                                   ) @ e.dz.unsqueeze(2)  # (B, H, L, L, D) q_t S1_s
    qo = (qs.transpose(2, 3) @ R).transpose(2, 3)                          # (B, H, L, L, D) q_t NS(S1_s)
    z = keep.unsqueeze(-1) * (q @ st.w1) - (step.unsqueeze(-1) * qo).sum(3)  # (B, H, L, D) q_t M1_t
    o = (F.silu(z).unsqueeze(-2) @ m2).squeeze(-2)                         # (B, H, L, V)
    o = o + q[..., : o.shape[-1]] if residual else o
    last = step[:, :, -1, :, None, None]                                   # (B, H, L, 1, 1) step_{L-1, s}
    s1 = carry[:, :, -1, None, None] * st.s1 + ek.transpose(-1, -2) @ wdz[:, :, -1]          # (B, H, F, D)
    m1 = (keep[:, :, -1, None, None] * st.w1 - st.s1 @ (last * carry[..., None, None] * R).sum(2)
          - ek.transpose(-1, -2) @ (last * (wdz @ R)).sum(2))              # (B, H, F, D)
    start = (None, None) if chunk_size == 1 else (at1, at2)
    c = window - 1
    final = AtlasState(m1, m2[:, :, -1], s1, s2[:, :, -1], *start, ek[:, :, ek.shape[2] - c:],
                       ev[:, :, ev.shape[2] - c:], eg[:, :, eg.shape[2] - c:], st.offset + L)
    return o, final


def chunk_atlas(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    g: torch.Tensor,
    beta: torch.Tensor,
    g_momentum: torch.Tensor,
    gamma: torch.Tensor,
    w1: torch.Tensor,
    w2: torch.Tensor,
    window: int = 1,
    ns_steps: int = 5,
    residual: bool = True,
    initial_state: AtlasState | None = None,
    output_final_state: bool = False,
    chunk_size: int = 1,
) -> tuple[torch.Tensor, AtlasState | None]:
    """Chunk-parallel form of ``recurrent_atlas`` (same arguments, same function for every ``chunk_size``).

    Inside a chunk all gradients are taken at one memory, so the momentum after each token is a weighted sum
    ``S_t = Theta_t S_0 + sum_i w_ti u_i^T dz_i`` (weights from the momentum decays and the window), Newton-Schulz
    runs on all of them at once, and the memory after each token is ``M_t = A_t M_0 - sum_s A_ts eta_s NS(S_s)``.
    A Python loop runs over chunks only; chunk boundaries follow the state's offset, as in the reference.
    When autograd records, each chunk is recomputed in the backward pass instead of keeping its activations (the
    Newton-Schulz iterates of every token): the same function and gradients, a chunk's memory instead of a
    sequence's (a 4-layer d_model 128 model on 16 x 128 tokens otherwise holds about 19 GB). The batch runs in
    blocks of at most ``BLOCK_PAIRS`` (sequence, head) pairs, which keeps the per-token matrices of a block in
    cache (a fifth less time per training step than the whole batch at once in a 4-layer d_model 128 model on a
    CPU).
    """
    check_inputs("chunk_atlas", q, k, v, g, beta, g_momentum, gamma, w1, w2, window, ns_steps, chunk_size, residual)
    dtype, ct = q.dtype, compute_dtype(q)
    st = initial_state or initial(w1, w2, k.to(ct), v.to(ct), window, chunk_size)
    st = AtlasState(*(None if x is None else x.to(ct) for x in st[:9]), st.offset)
    inputs = tuple(x.to(ct).transpose(1, 2) for x in (q, k, v, g, beta, g_momentum, gamma))  # (B, H, T, .)
    size = max(1, BLOCK_PAIRS // q.shape[2])
    parts = [_chunks(_rows(st, b, b + size), [x[b:b + size] for x in inputs], window, ns_steps, residual, chunk_size)
             for b in range(0, q.shape[0], size) or [0]]              # (an empty batch runs once, for its offset)
    o = torch.cat([p[0] for p in parts])                                   # (B, H, T, V)
    if not output_final_state:
        return o.transpose(1, 2).to(dtype), None
    ends = [p[1] for p in parts]
    final = AtlasState(*(None if x is None else torch.cat([e[i] for e in ends]) for i, x in enumerate(ends[0][:9])),
                       ends[0].offset)
    return o.transpose(1, 2).to(dtype), final


BLOCK_PAIRS = 16   # (sequence, head) pairs per block of chunk_atlas's batch


def _rows(st: AtlasState, lo: int, hi: int) -> AtlasState:
    """Sequences ``lo:hi`` of a state."""
    return AtlasState(*(None if x is None else x[lo:hi] for x in st[:9]), st.offset)


def _chunks(st: AtlasState, inputs: list[torch.Tensor], window: int, ns_steps: int, residual: bool,
            chunk_size: int) -> tuple[torch.Tensor, AtlasState]:
    """``o [b, H, T, V]`` and the final state for one block of sequences; inputs ``[b, H, T, .]``, chunk by chunk
    (a chunk's boundary follows the state's offset), each recomputed in the backward pass when autograd records."""
    outputs, t, T = [], 0, inputs[0].shape[2]
    recompute = torch.is_grad_enabled()
    while t < T:
        L = min(T - t, chunk_size - st.offset % chunk_size)               # to the end of the state's chunk
        args = (st, *(x[:, :, t:t + L] for x in inputs), window, ns_steps, residual, chunk_size)
        o, st = checkpoint(segment, *args, use_reentrant=False) if recompute else segment(*args)
        outputs.append(o)
        t += L
    o = torch.cat(outputs, dim=2) if T else inputs[2].new_zeros(inputs[2].shape)  # (b, H, T, V)
    return o, st
