"""Pretrained causal LMs: loaded offline (``load_pretrained``), converted into gatelab models (``to_gatelab``),
and linearized to constant-state mixers (``linearize``, ``gatelab linearize``)."""
from .convert import SUPPORTED, logits_gap, model_config, to_gatelab
from .source import INSTALL_EXTRA, Pretrained, load_pretrained, require_pretrained

__all__ = ["INSTALL_EXTRA", "SUPPORTED", "Pretrained", "load_pretrained", "logits_gap", "model_config",
           "require_pretrained", "to_gatelab"]
