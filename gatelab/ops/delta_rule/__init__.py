"""The (gated) delta rule: DeltaNet (``g=None``) and Gated DeltaNet."""
from .chunk import chunk_gated_delta_rule
from .ref import recurrent_gated_delta_rule

__all__ = ["chunk_gated_delta_rule", "recurrent_gated_delta_rule"]
