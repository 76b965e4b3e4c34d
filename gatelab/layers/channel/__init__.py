"""Channel mixers (within a token). Importing registers them in ``gatelab.registry.CHANNEL_MIXERS``."""
from .chain import ChainFFN, ChainLinear
from .mlp import MLP, SwiGLU

__all__ = ["MLP", "ChainFFN", "ChainLinear", "SwiGLU"]
