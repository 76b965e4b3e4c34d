"""ATLAS's Omega rule: a deep memory trained at test time over a sliding window, with a Muon-style update."""
from .chunk import chunk_atlas
from .memory import newton_schulz
from .ref import recurrent_atlas
from .state import AtlasState

__all__ = ["AtlasState", "chunk_atlas", "newton_schulz", "recurrent_atlas"]
