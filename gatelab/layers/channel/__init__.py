"""Channel mixers (within a token). Importing registers them in ``gatelab.registry.CHANNEL_MIXERS``."""
from .mlp import MLP, SwiGLU
from .moe import AdaptiveComputationModule, MixtureOfHiddenDimensions  # noqa: F401  (registers acm, mohd)

__all__ = ["MLP", "SwiGLU"]
