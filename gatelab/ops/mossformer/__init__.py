"""MossFormer's gated attention core (FLASH's mixed chunk attention): chunked form and per-token reference."""
from .chunk import chunk_mossformer_attention
from .ref import recurrent_mossformer_attention

__all__ = ["chunk_mossformer_attention", "recurrent_mossformer_attention"]
