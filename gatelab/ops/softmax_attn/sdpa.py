"""Softmax attention, fast form: ``torch.nn.functional.scaled_dot_product_attention`` in the [B, T, H, D] layout."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .ref import causal_mask, check_attention_inputs


def sdpa_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    scale: float | None = None,
    causal: bool = True,
    window: int | None = None,
    key_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, None]:
    """Softmax attention through PyTorch's fused SDPA (FlashAttention / memory-efficient / math backends).

    Same arguments and semantics as ``softmax_attention`` with the plain softmax and optional sliding window (GQA,
    ``Tq <= Tk`` with the queries at the last positions; ``key_mask [B, Tk]``, True at real keys). Returns ``o``
    ``[B, Tq, H, Dv]`` and None (the probabilities are never formed).
    """
    check_attention_inputs(q, k, v)
    Tq, Tk = q.shape[1], k.shape[1]
    mask, is_causal = None, False
    if causal and window is not None and window < Tk:
        mask = causal_mask(Tq, Tk, q.device, window)                   # (Tq, Tk) sliding window
    elif causal and Tq == Tk:
        is_causal = True
    elif causal and Tq > 1:
        mask = causal_mask(Tq, Tk, q.device)                           # (Tq, Tk) bottom-right aligned
    if key_mask is not None:
        if is_causal:
            mask, is_causal = causal_mask(Tq, Tk, q.device), False
        pad = key_mask[:, None, None, :]                               # (B, 1, 1, Tk) padded keys masked
        mask = pad if mask is None else mask & pad                     # (B, 1, Tq, Tk)
    o = F.scaled_dot_product_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),       # (B, H, T, D)
        attn_mask=mask, is_causal=is_causal, scale=scale, enable_gqa=q.shape[2] != k.shape[2],
    )
    return o.transpose(1, 2), None                                     # (B, Tq, H, Dv)
