"""A transformers model's rotary embedding as gatelab's: the RoPE base and ``RopeScaling`` that give exactly the
frequencies and the cos/sin factor the model computes, or a ConfigError naming what does not map."""
from __future__ import annotations

import math
from typing import Any

import torch

from ..config import ConfigError
from ..layers.rope import RopeScaling, rope_frequencies

ROPE_TYPES = ("default", "linear", "llama3", "yarn")


def _yarn_mscale(factor: float, mscale: float = 1.0) -> float:
    """YaRN's attention temperature for ``factor`` (1 at or below factor 1), as transformers computes it."""
    return 1.0 if factor <= 1 else 0.1 * mscale * math.log(factor) + 1.0


def _scaling(kind: str, p: dict[str, Any], max_len: int, where: str) -> RopeScaling | None:
    """The ``RopeScaling`` of transformers' ``rope_parameters`` ``p`` of type ``kind``."""
    if kind == "default":
        return None
    if kind == "linear":
        return RopeScaling("linear", float(p["factor"]), max_len)
    original = int(p.get("original_max_position_embeddings") or max_len)
    if kind == "llama3":
        return RopeScaling("llama3", float(p["factor"]), original, low_freq_factor=float(p["low_freq_factor"]),
                           high_freq_factor=float(p["high_freq_factor"]))
    if p.get("truncate", True) is False:
        raise ConfigError(f"{where}: yarn with truncate=false is not supported (gatelab's YaRN rounds its "
                          "correction range, as the paper's code does)")
    factor = float(p.get("factor") or max_len / original)
    attention = p.get("attention_factor")
    if attention is None and p.get("mscale") and p.get("mscale_all_dim"):
        attention = _yarn_mscale(factor, p["mscale"]) / _yarn_mscale(factor, p["mscale_all_dim"])
    return RopeScaling("yarn", factor, original, beta_fast=float(p.get("beta_fast") or 32),
                       beta_slow=float(p.get("beta_slow") or 1),
                       attention_factor=None if attention is None else float(attention))


def rope_from_hf(model: Any, head_dim: int) -> tuple[float, RopeScaling | None]:
    """``(rope_base, rope_scaling)`` of a Llama-family transformers model, checked against the frequencies and
    the cos/sin factor its rotary embedding holds (``model.model.rotary_emb``)."""
    config, where = model.config, type(model).__name__
    params = dict(getattr(config, "rope_parameters", None) or {})
    if params and all(isinstance(v, dict) for v in params.values()):
        raise ConfigError(f"{where}: a RoPE per layer type ({', '.join(params)}) is not supported; gatelab's "
                          "converted models use one RoPE in every layer")
    kind = params.get("rope_type", params.get("type", "default"))
    if kind not in ROPE_TYPES:
        raise ConfigError(f"{where}: rope_type {kind!r} is not supported; supported: {', '.join(ROPE_TYPES)}")
    if params.get("partial_rotary_factor", 1.0) != 1.0:
        raise ConfigError(f"{where}: partial_rotary_factor={params['partial_rotary_factor']} is not supported by "
                          "convert; every dim of a head must rotate")
    base = float(params.get("rope_theta") or getattr(config, "rope_theta", 0.0))
    if not base > 1:
        raise ConfigError(f"{where}: rope_theta={base} is not a RoPE base (it must exceed 1)")
    scaling = _scaling(kind, params, config.max_position_embeddings, where)
    rotary = model.model.rotary_emb
    theirs = rotary.inv_freq.detach().to("cpu", torch.float64)
    ours, factor = rope_frequencies(head_dim, base, scaling, torch.float64)
    if theirs.shape != ours.shape or not torch.allclose(ours, theirs, rtol=1e-5, atol=0) or \
            not math.isclose(factor, float(rotary.attention_scaling), rel_tol=1e-6):
        raise ConfigError(f"{where}: its RoPE ({kind}, base {base}) does not give the frequencies gatelab computes "
                          "for it; the model cannot be converted exactly")
    return base, scaling
