"""Token mixers (across time). Importing this package registers every mixer in ``gatelab.registry.MIXERS``."""
from .atlas import Atlas
from .attention import GatedAttention, KVCache, SlidingWindowAttention, SoftmaxAttention
from .based import Based
from .bidirectional import Bidirectional, bidirectional_mixer
from .combiner import Combiner
from .convolution import BaseConv, GatedAssociativeMemory
from .deltanet import DeltaNet, GatedDeltaNet
from .flowformer import Flowformer
from .fsmn import GatedFSMN
from .gates import AttentionGate, GateOptions
from .gla import GatedLinearAttention
from .hgrn import HGRN
from .hornet import HorNet
from .kernel_rpe import KernelRPE
from .liger import LigerAttention
from .linear import HGRN2, LinearAttention, MultiScaleRetention
from .lmu import LMU
from .mamba import Mamba
from .mamba2 import Mamba2
from .mossformer import MossFormer
from .probsparse import ProbSparseAttention
from .sinkhorn import SinkhornAttention
from .tokenformer import TokenFormer
from .vig import ViGBiGLA

__all__ = [
    "Atlas", "AttentionGate", "BaseConv", "Based", "Bidirectional", "bidirectional_mixer", "Combiner", "DeltaNet",
    "Flowformer", "GatedAssociativeMemory", "GatedAttention", "GatedDeltaNet", "GatedFSMN", "GatedLinearAttention",
    "GateOptions", "HGRN", "HGRN2", "HorNet", "KernelRPE", "KVCache", "LigerAttention", "LinearAttention", "LMU",
    "Mamba", "Mamba2", "MossFormer", "MultiScaleRetention", "ProbSparseAttention", "SinkhornAttention",
    "SlidingWindowAttention", "SoftmaxAttention", "TokenFormer", "ViGBiGLA",
]
