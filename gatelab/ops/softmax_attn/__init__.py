"""Softmax attention: reference (materialised, standard or clipped softmax) and the fused SDPA form."""
from .ref import (
    attention_mix,
    attention_probs,
    attention_scores,
    causal_mask,
    clip_gamma_for_length,
    clipped_softmax,
    softmax_attention,
)
from .sdpa import sdpa_attention

__all__ = ["attention_mix", "attention_probs", "attention_scores", "causal_mask", "clip_gamma_for_length",
           "clipped_softmax", "sdpa_attention", "softmax_attention"]
