"""The math of gatelab: pure functions on tensors, ``[B, T, H, D]`` layout, log-space gates (DESIGN §3)."""
from .atlas import chunk_atlas, recurrent_atlas
from .backend import BACKENDS, backend_record, default_backend, use_backend
from .delta_rule import chunk_gated_delta_rule, recurrent_gated_delta_rule
from .gla import chunk_gla, recurrent_gla
from .selective_scan import chunk_selective_scan, recurrent_selective_scan
from .simple_gla import chunk_simple_gla, recurrent_simple_gla
from .softmax_attn import clip_gamma_for_length, clipped_softmax, sdpa_attention, softmax_attention

__all__ = [
    "BACKENDS",
    "chunk_atlas",
    "recurrent_atlas",
    "backend_record",
    "default_backend",
    "use_backend",
    "chunk_gated_delta_rule",
    "chunk_gla",
    "chunk_selective_scan",
    "chunk_simple_gla",
    "clip_gamma_for_length",
    "clipped_softmax",
    "recurrent_gated_delta_rule",
    "recurrent_gla",
    "recurrent_selective_scan",
    "recurrent_simple_gla",
    "sdpa_attention",
    "softmax_attention",
]
