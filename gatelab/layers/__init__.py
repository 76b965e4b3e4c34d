"""Layers: token mixers, channel mixers, norms, rotary embedding."""
from . import residual  # noqa: F401  (registers the residual connections)
from .base import Probe, TokenMixer
from .channel import MLP, SwiGLU
from .conv import ShortConv
from .norm import build_norm
from .rope import RotaryEmbedding
from .token import AttentionGate, GatedAttention, GatedLinearAttention, GateOptions, KVCache, SoftmaxAttention

__all__ = [
    "MLP", "AttentionGate", "ShortConv", "GateOptions", "GatedAttention", "GatedLinearAttention", "KVCache", "Probe",
    "RotaryEmbedding", "SoftmaxAttention", "SwiGLU", "TokenMixer", "build_norm",
]
