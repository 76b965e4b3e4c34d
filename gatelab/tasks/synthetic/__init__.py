"""Synthetic sequence tasks of the Mamba paper: selective copying and induction heads."""
from .induction_heads import InductionHeadsConfig, induction_heads
from .selective_copying import SelectiveCopyingConfig, selective_copying

__all__ = ["InductionHeadsConfig", "SelectiveCopyingConfig", "induction_heads", "selective_copying"]
