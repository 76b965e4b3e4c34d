"""Channel mixers (within a token). Importing registers them in ``gatelab.registry.CHANNEL_MIXERS``."""
from .mlp import MLP, SwiGLU

__all__ = ["MLP", "SwiGLU"]
