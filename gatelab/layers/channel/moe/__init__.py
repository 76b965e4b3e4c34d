"""Token-routed channel mixers: mixtures of experts (the router, the grouped dispatch and the keys built on them:
moe, evomoe, pregated_moe), token-adaptive computation (acm) and hidden-dimension routing (mohd)."""
from .acm import AdaptiveComputationModule
from .evomoe import EvoMoE
from .moe import MoE
from .mohd import MixtureOfHiddenDimensions
from .pregated import PreGatedMoE

__all__ = ["AdaptiveComputationModule", "EvoMoE", "MixtureOfHiddenDimensions", "MoE", "PreGatedMoE"]
