"""Mixture-of-experts-type channel mixers: token-adaptive computation (ACM) and hidden-dimension routing (MoHD)."""
from .acm import AdaptiveComputationModule
from .mohd import MixtureOfHiddenDimensions

__all__ = ["AdaptiveComputationModule", "MixtureOfHiddenDimensions"]
