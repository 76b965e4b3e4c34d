"""Token mixers (across time). Importing this package registers every mixer in ``gatelab.registry.MIXERS``."""
from .attention import GatedAttention, KVCache, SlidingWindowAttention, SoftmaxAttention
from .convolution import BaseConv, GatedAssociativeMemory
from .deltanet import DeltaNet, GatedDeltaNet
from .gates import AttentionGate, GateOptions
from .gla import GatedLinearAttention
from .linear import HGRN2, LinearAttention, MultiScaleRetention

__all__ = ["AttentionGate", "BaseConv", "DeltaNet", "GatedAssociativeMemory", "GateOptions", "GatedAttention", "GatedDeltaNet", "GatedLinearAttention",
           "HGRN2", "KVCache", "LinearAttention", "MultiScaleRetention", "SlidingWindowAttention",
           "SoftmaxAttention"]
