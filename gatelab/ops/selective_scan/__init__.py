"""Mamba-1's selective scan: ``recurrent_selective_scan`` (reference) and ``chunk_selective_scan``."""
from .chunk import chunk_selective_scan
from .ref import recurrent_selective_scan

__all__ = ["chunk_selective_scan", "recurrent_selective_scan"]
