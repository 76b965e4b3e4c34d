"""Mixtures of experts: the router, the grouped dispatch and the registered keys built on them."""
from .evomoe import EvoMoE
from .moe import MoE
from .pregated import PreGatedMoE

__all__ = ["EvoMoE", "MoE", "PreGatedMoE"]
