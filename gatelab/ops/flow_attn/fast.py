"""Flow attention (Flowformer), fast form: every flow is a cumulative sum (causal) or a sum (non-causal), and the
causal read-out is ungated linear attention in its chunked form. Linear in T.

Legend: B batch, T time, H heads, K feature dim, V value dim. q and k are the non-negative features (sigmoid).
"""
from __future__ import annotations

import torch

from .._common import compute_dtype
from ..simple_gla import chunk_simple_gla
from .state import FlowState, check_flow_inputs, empty_flow_state


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum(-1)


def _causal(q, k, v, eps, clamp, state: FlowState, chunk_size: int):
    T = q.shape[1]
    n = torch.arange(state.count + 1, state.count + T + 1, dtype=q.dtype, device=q.device)[:, None]  # (T, 1)
    q_sum = state.q_sum[:, None] + q.cumsum(1)                                      # (B, T, H, K)
    k_sum = state.k_sum[:, None] + k.cumsum(1)
    incoming = n / _dot(q + eps, k_sum + eps)                                       # (B, T, H): I_t, times n
    outgoing = n / _dot(k + eps, q_sum + eps)                                       # (B, T, H): O_t, times n
    qi_sum = state.qi_sum[:, None] + (q * incoming[..., None]).cumsum(1)            # (B, T, H, K)
    ko_sum = state.ko_sum[:, None] + (k * outgoing[..., None]).cumsum(1)
    allocation = torch.sigmoid(_dot(q + eps, ko_sum + eps) / n)                     # (B, T, H)
    source = (_dot(k + eps, qi_sum + eps) / n).clamp(-clamp, clamp).exp()           # (B, T, H): exp(O^_t)
    comp_sum = state.comp_sum[:, None] + source.cumsum(1)
    competition = source / comp_sum * n                                             # (B, T, H)
    o, kv = chunk_simple_gla(q * (incoming / n)[..., None], k, v * competition[..., None], scale=1.0,
                             initial_state=state.kv, output_final_state=True, chunk_size=chunk_size)
    final = FlowState(q_sum[:, -1], k_sum[:, -1], qi_sum[:, -1], ko_sum[:, -1], comp_sum[:, -1], kv,
                      state.count + T)
    return o * allocation[..., None], final


def _bidirectional(q, k, v, eps, clamp, lengths):
    B, T = q.shape[:2]
    real = torch.ones(B, T, dtype=torch.bool, device=q.device) if lengths is None else (
        torch.arange(T, device=q.device) < lengths.to(q.device)[:, None])          # (B, T)
    q, k = q * real[..., None, None], k * real[..., None, None]                     # pads are no query, no key
    n = real.sum(1).to(q.dtype)[:, None, None]                                      # (B, 1, 1)
    incoming = 1 / _dot(q + eps, k.sum(1, keepdim=True) + eps)                      # (B, T, H): I_i
    outgoing = 1 / _dot(k + eps, q.sum(1, keepdim=True) + eps)                      # (B, T, H): O_j
    allocation = torch.sigmoid(_dot(q + eps, (k * outgoing[..., None]).sum(1, keepdim=True) + eps))
    source = _dot(k + eps, (q * incoming[..., None]).sum(1, keepdim=True) + eps).clamp(-clamp, clamp)
    competition = torch.softmax(source.masked_fill(~real[..., None], float("-inf")), 1) * n     # (B, T, H)
    kv = torch.einsum("bjhk,bjhv->bhkv", k, v * competition[..., None])             # (B, H, K, V)
    o = torch.einsum("bihk,bhkv->bihv", q * incoming[..., None], kv)                # (B, T, H, V)
    return o * allocation[..., None]


def flow_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, causal: bool = True, eps: float = 1e-6,
                   clamp: float = 1.0, lengths: torch.Tensor | None = None, initial_state: FlowState | None = None,
                   output_final_state: bool = False, chunk_size: int = 64) -> tuple[torch.Tensor, FlowState | None]:
    """Flow attention (Wu et al. 2022, "Flowformer", arXiv 2202.06258; thuml/Flowformer ``Flow_Attention.py``).

    Args:
        q, k: ``[B, T, H, K]`` non-negative features (Flowformer's sigmoid of the projections); v: ``[B, T, H, V]``.
        causal: the causal form (cumulative flows scaled by the position count, competition normalised by the
            cumulative sum) or the non-causal one (whole-sequence flows, softmax competition times the length).
        eps: added to features and sums (Flowformer's 1e-6). clamp: bound of the conserved source (1 in
            ``Flow_Attention.py``, 5 in its language-model code).
        lengths: ``[B]`` real lengths of right-padded sequences (non-causal only) or None.
        initial_state, output_final_state: the running sums (``FlowState``; causal only).
        chunk_size: chunk of the causal read-out (ungated linear attention, ``chunk_simple_gla``).

    Returns:
        ``o [B, T, H, V]`` in q's dtype and the final ``FlowState`` (or None). Non-causal, padded positions
        output 0.
    """
    B, T, H, K, V = check_flow_inputs("flow_attention", q, k, v, causal, lengths, initial_state)
    dtype, ct = q.dtype, compute_dtype(q)
    q, k, v = (x.to(ct) for x in (q, k, v))
    if T == 0:                                  # no token: an empty output, the state as it was
        state = empty_flow_state(B, H, K, V, q) if causal and initial_state is None else initial_state
        return v.new_zeros(B, 0, H, V).to(dtype), (state if output_final_state else None)
    if not causal:
        return _bidirectional(q, k, v, eps, clamp, lengths).to(dtype), None
    state = empty_flow_state(B, H, K, V, q) if initial_state is None else initial_state
    o, final = _causal(q, k, v, eps, clamp, FlowState(*(x.to(ct) for x in state[:6]), state.count), chunk_size)
    return o.to(dtype), (final if output_final_state else None)
