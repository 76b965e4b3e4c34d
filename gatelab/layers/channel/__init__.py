"""Channel mixers (within a token). Importing registers them in ``gatelab.registry.CHANNEL_MIXERS``."""
from .mlp import MLP, SwiGLU
from .moe import EvoMoE, MoE, PreGatedMoE

__all__ = ["MLP", "SwiGLU", "MoE", "EvoMoE", "PreGatedMoE"]
