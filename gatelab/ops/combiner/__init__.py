"""Combiner (Ren et al. 2021): causal full attention in factorised form, the fast forms and the reference matrix."""
from .fast import VARIANTS, combiner_attention
from .ref import Summary, combiner_reference, combiner_structure

__all__ = ["VARIANTS", "Summary", "combiner_attention", "combiner_reference", "combiner_structure"]
