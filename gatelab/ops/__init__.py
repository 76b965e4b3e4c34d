"""The math of gatelab: pure functions on tensors, ``[B, T, H, D]`` layout, log-space gates (DESIGN §3)."""
from .atlas import chunk_atlas, recurrent_atlas
from .backend import BACKENDS, backend_record, default_backend, use_backend
from .combiner import combiner_attention, combiner_reference
from .delta_rule import chunk_gated_delta_rule, recurrent_gated_delta_rule
from .flow_attn import flow_attention, flow_attention_reference
from .gla import chunk_gla, recurrent_gla
from .kernel_rpe import fft_kernel_rpe, quadratic_kernel_rpe
from .lmu import chunk_lmu, fft_lmu, recurrent_lmu
from .mossformer import chunk_mossformer_attention, recurrent_mossformer_attention
from .selective_scan import chunk_selective_scan, recurrent_selective_scan
from .simple_gla import chunk_simple_gla, recurrent_simple_gla
from .softmax_attn import clip_gamma_for_length, clipped_softmax, sdpa_attention, softmax_attention

__all__ = [
    "backend_record", "BACKENDS", "chunk_atlas", "chunk_gated_delta_rule", "chunk_gla", "chunk_lmu",
    "chunk_mossformer_attention", "chunk_selective_scan", "chunk_simple_gla", "clip_gamma_for_length",
    "clipped_softmax", "combiner_attention", "combiner_reference", "default_backend", "fft_kernel_rpe", "fft_lmu",
    "flow_attention", "flow_attention_reference", "quadratic_kernel_rpe", "recurrent_atlas",
    "recurrent_gated_delta_rule", "recurrent_gla", "recurrent_lmu", "recurrent_mossformer_attention",
    "recurrent_selective_scan", "recurrent_simple_gla", "sdpa_attention", "softmax_attention", "use_backend",
]
