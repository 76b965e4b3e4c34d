"""Gated linear attention: ``recurrent_gla`` (reference) and ``chunk_gla`` (chunkwise parallel)."""
from .chunk import chunk_gla
from .ref import recurrent_gla

__all__ = ["chunk_gla", "recurrent_gla"]
