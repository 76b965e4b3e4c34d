"""Token mixers (across time). Importing this package registers every mixer in ``gatelab.registry.MIXERS``."""
from .atlas import Atlas
from .attention import GatedAttention, KVCache, SlidingWindowAttention, SoftmaxAttention
from .based import Based
from .bidirectional import Bidirectional, bidirectional_mixer
from .convolution import BaseConv, GatedAssociativeMemory
from .deltanet import DeltaNet, GatedDeltaNet
from .gates import AttentionGate, GateOptions
from .gla import GatedLinearAttention
from .hgrn import HGRN
from .liger import LigerAttention
from .linear import HGRN2, LinearAttention, MultiScaleRetention
from .mamba import Mamba
from .mamba2 import Mamba2
from .probsparse import ProbSparseAttention
from .sinkhorn import SinkhornAttention
from .vig import ViGBiGLA

__all__ = [
    "HGRN", "HGRN2", "Atlas", "AttentionGate", "BaseConv", "Based", "Bidirectional", "DeltaNet", "GateOptions",
    "GatedAssociativeMemory",
    "GatedAttention", "GatedDeltaNet", "GatedLinearAttention", "KVCache", "LigerAttention", "LinearAttention",
    "Mamba", "Mamba2", "MultiScaleRetention", "ProbSparseAttention", "SinkhornAttention", "SlidingWindowAttention",
    "SoftmaxAttention",
    "ViGBiGLA", "bidirectional_mixer",
]
