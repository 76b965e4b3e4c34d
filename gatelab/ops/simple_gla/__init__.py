"""Linear attention with a per-head scalar decay (RetNet, Mamba2/SSD; ungated linear attention with g=None)."""
from .chunk import chunk_simple_gla
from .ref import recurrent_simple_gla

__all__ = ["chunk_simple_gla", "recurrent_simple_gla"]
