"""Flow attention (Flowformer), reference form: the causal form token by token with its running sums, the
non-causal form per sequence with explicit sums and its ``[T, T]`` attention matrix. Slow; for tests.

Legend: B batch, T time, H heads, K feature dim, V value dim. q and k are the non-negative features (sigmoid).
"""
from __future__ import annotations

import torch

from .._common import compute_dtype
from .state import FlowState, check_flow_inputs, empty_flow_state


def _causal(q, k, v, eps, clamp, state: FlowState):
    """One sequence batch, token by token; returns ``o [B, T, H, V]`` and the state after the last token."""
    outputs = []
    q_sum, k_sum, qi_sum, ko_sum, comp_sum, kv, count = state
    for t in range(q.shape[1]):
        qt, kt, vt = q[:, t], k[:, t], v[:, t]                                # (B, H, K), (B, H, K), (B, H, V)
        n = count + t + 1                                                     # tokens seen, this one included
        q_sum, k_sum = q_sum + qt, k_sum + kt
        incoming = n / ((qt + eps) * (k_sum + eps)).sum(-1)                   # (B, H): I_t, times n
        outgoing = n / ((kt + eps) * (q_sum + eps)).sum(-1)                   # (B, H): O_t, times n
        qi_sum = qi_sum + qt * incoming[..., None]
        ko_sum = ko_sum + kt * outgoing[..., None]
        conserved_sink = ((qt + eps) * (ko_sum + eps)).sum(-1) / n            # (B, H)
        conserved_source = (((kt + eps) * (qi_sum + eps)).sum(-1) / n).clamp(-clamp, clamp)
        allocation = torch.sigmoid(conserved_sink)                            # (B, H)
        comp_sum = comp_sum + conserved_source.exp()
        competition = conserved_source.exp() / comp_sum * n                   # (B, H)
        kv = kv + kt[..., :, None] * (vt * competition[..., None])[..., None, :]   # (B, H, K, V)
        read = torch.einsum("bhk,bhkv->bhv", qt * (incoming / n)[..., None], kv)   # (B, H, V)
        outputs.append(read * allocation[..., None])
    o = torch.stack(outputs, 1) if outputs else v.new_zeros(v.shape)          # (B, T, H, V)
    return o, FlowState(q_sum, k_sum, qi_sum, ko_sum, comp_sum, kv, count + q.shape[1])


def _bidirectional(q, k, v, eps, clamp, n):
    """One sequence ``[n, H, *]`` (its real tokens), non-causal: ``o [n, H, V]`` from the attention matrix."""
    incoming = 1 / torch.einsum("ihk,hk->ih", q + eps, k.sum(0) + eps)           # (n, H): I_i
    outgoing = 1 / torch.einsum("jhk,hk->jh", k + eps, q.sum(0) + eps)           # (n, H): O_j
    conserved_sink = torch.einsum("ihk,hk->ih", q + eps, (k * outgoing[..., None]).sum(0) + eps)
    conserved_source = torch.einsum("jhk,hk->jh", k + eps, (q * incoming[..., None]).sum(0) + eps)
    allocation = torch.sigmoid(conserved_sink)                                  # (n, H); L / S = 1
    competition = torch.softmax(conserved_source.clamp(-clamp, clamp), 0) * n   # (n, H)
    attn = torch.einsum("ihk,jhk->hij", q * incoming[..., None], k) * competition.T[:, None, :]  # (H, n, n)
    return torch.einsum("hij,jhv->ihv", attn, v) * allocation[..., None]          # (n, H, V)


def flow_attention_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, causal: bool = True,
                             eps: float = 1e-6, clamp: float = 1.0, lengths: torch.Tensor | None = None,
                             initial_state: FlowState | None = None, output_final_state: bool = False,
                             chunk_size: int = 64) -> tuple[torch.Tensor, FlowState | None]:
    """Flow attention (Wu et al. 2022, arXiv 2202.06258) on features ``q, k [B, T, H, K]`` (non-negative) and
    values ``v [B, T, H, V]``; the same arguments and results as ``flow_attention`` (``chunk_size`` unused here).
    Non-causal, positions at or after ``lengths[b]`` are neither queries nor keys of the real ones (their own
    outputs are 0)."""
    B, T, H, K, V = check_flow_inputs("flow_attention_reference", q, k, v, causal, lengths, initial_state)
    dtype, ct = q.dtype, compute_dtype(q)
    q, k, v = (x.to(ct) for x in (q, k, v))
    if causal:
        state = empty_flow_state(B, H, K, V, q) if initial_state is None else initial_state
        o, final = _causal(q, k, v, eps, clamp, FlowState(*(x.to(ct) for x in state[:6]), state.count))
        return o.to(dtype), (final if output_final_state else None)
    o = torch.zeros(B, T, H, V, dtype=ct, device=q.device)
    for b in range(B):
        n = T if lengths is None else int(lengths[b])
        o[b, :n] = _bidirectional(q[b, :n], k[b, :n], v[b, :n], eps, clamp, n)
    return o.to(dtype), None
