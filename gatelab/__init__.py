"""gatelab: gated sequence mixers with one protocol, CPU-first, and a harness to compare them side by side."""
from . import layers  # noqa: F401  (registers mixers)
from .registry import CHANNEL_MIXERS, MIXERS

__version__ = "0.1.0"
__all__ = ["CHANNEL_MIXERS", "MIXERS", "__version__"]
