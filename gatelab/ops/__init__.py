"""The math of gatelab: pure functions on tensors, ``[B, T, H, D]`` layout, log-space gates (DESIGN §3)."""
from .gla import chunk_gla, recurrent_gla
from .softmax_attn import clip_gamma_for_length, clipped_softmax, sdpa_attention, softmax_attention

__all__ = [
    "chunk_gla",
    "clip_gamma_for_length",
    "clipped_softmax",
    "recurrent_gla",
    "sdpa_attention",
    "softmax_attention",
]
