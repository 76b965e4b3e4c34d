"""Parameter counting without allocating weights, and parameter matching across mixers (so a comparison of
mixers is a comparison at equal model size, not a reward for whichever mixer has more weights)."""
from __future__ import annotations

import dataclasses
import math

import torch

from ..config import ConfigError
from .lm import DecoderLM, ModelConfig


def _meta_model(cfg: ModelConfig) -> DecoderLM:
    with torch.device("meta"):
        return DecoderLM(cfg)


def count_params(cfg: ModelConfig) -> int:
    """The number of parameters of ``DecoderLM(cfg)``, counted on the meta device (no memory, no init cost)."""
    return sum(p.numel() for p in _meta_model(cfg).parameters())


def count_active_params(cfg: ModelConfig) -> int:
    """The parameters one token uses: all of them, except that each channel mixer counts its ``active_params()``
    (a mixture of experts: the router, shared experts and top_k experts)."""
    return _meta_model(cfg).num_active_params()


def default_d_ff(cfg: ModelConfig) -> int:
    """The width of the first channel mixer when ``d_ff`` is 0 (its ``d_ff``; for experts, each expert's)."""
    layers = _meta_model(dataclasses.replace(cfg, d_ff=0)).channel_mixers()
    if not layers:
        raise ConfigError("parameter matching adjusts the channel mixer's d_ff; this model has channel='none'")
    return layers[0][1].d_ff


def d_ff_multiple(cfg: ModelConfig) -> int:
    """The multiple every channel mixer's d_ff must be (groups, chains or learners that split the width)."""
    return math.lcm(*(getattr(ch, "d_ff_multiple", 1) for _, ch in _meta_model(cfg).channel_mixers()), 1)


def match_params(cfg: ModelConfig, target: int, multiple: int = 4, active: bool = False) -> ModelConfig:
    """``cfg`` with the channel mixers' ``d_ff`` (a multiple of ``multiple`` and of what the layers need) chosen so
    the model's parameter count (``active``: its active parameters per token) is as close as possible to
    ``target``. Parameters grow linearly in d_ff, so two counts fix the line."""
    if all(key == "none" for key in cfg.channel_schedule()):
        raise ConfigError("parameter matching adjusts the channel mixer's d_ff; this model has channel='none'")
    count = count_active_params if active else count_params
    base = cfg.d_ff or default_d_ff(cfg)
    multiple = math.lcm(multiple, d_ff_multiple(cfg))
    step = multiple * max(1, 64 // multiple)
    base = multiple * max(1, round(base / multiple))
    p0, p1 = count(dataclasses.replace(cfg, d_ff=base)), count(dataclasses.replace(cfg, d_ff=base + step))
    ideal = base + (target - p0) * step / (p1 - p0)
    if ideal < multiple:
        smallest = count(dataclasses.replace(cfg, d_ff=multiple))
        raise ConfigError(f"cannot match {target:,} parameters by the channel width: with d_ff={multiple} the model "
                          f"({cfg.mixer}, channel {cfg.channel}, residual {cfg.residual}) already has {smallest:,}")
    below = multiple * int(ideal // multiple)
    candidates = {max(multiple, below), max(multiple, below + multiple)}
    best = min(candidates, key=lambda d: abs(count(dataclasses.replace(cfg, d_ff=d)) - target))
    return dataclasses.replace(cfg, d_ff=best)
