"""Models built from blocks of registered mixers."""
from .block import Block
from .lm import DecoderLM, LMOutput, ModelConfig

__all__ = ["Block", "DecoderLM", "LMOutput", "ModelConfig"]
