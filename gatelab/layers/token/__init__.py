"""Token mixers (across time). Importing this package registers every mixer in ``gatelab.registry.MIXERS``."""
from .attention import GatedAttention, KVCache, SoftmaxAttention
from .gates import AttentionGate, GateOptions
from .gla import GatedLinearAttention

__all__ = ["AttentionGate", "GateOptions", "GatedAttention", "GatedLinearAttention", "KVCache", "SoftmaxAttention"]
