"""Channel mixers (within a token). Importing registers them in ``gatelab.registry.CHANNEL_MIXERS``."""
from .chain import ChainFFN, ChainLinear
from .glu import GEGLU, GLU, Bilinear, GatedFFN, ReGLU, SwiGLU
from .grkan import GRKAN
from .lowrank import LowRankFFN
from .mlp import MLP
from .moe import AdaptiveComputationModule, EvoMoE, MixtureOfHiddenDimensions, MoE, PreGatedMoE
from .pattention import Pattention, PattentionFFN
from .polycom import PolyCom

__all__ = ["GEGLU", "GLU", "GRKAN", "MLP", "AdaptiveComputationModule", "Bilinear", "ChainFFN", "ChainLinear",
           "EvoMoE", "GatedFFN", "LowRankFFN", "MixtureOfHiddenDimensions", "MoE", "Pattention", "PattentionFFN",
           "PolyCom", "PreGatedMoE", "ReGLU", "SwiGLU"]
