"""Parameter counting without allocating weights, and parameter matching across mixers (so a comparison of
mixers is a comparison at equal model size, not a reward for whichever mixer has more weights)."""
from __future__ import annotations

import dataclasses

import torch

from ..config import ConfigError
from ..registry import CHANNEL_MIXERS
from .lm import DecoderLM, ModelConfig


def count_params(cfg: ModelConfig) -> int:
    """The number of parameters of ``DecoderLM(cfg)``, counted on the meta device (no memory, no init cost)."""
    with torch.device("meta"):
        model = DecoderLM(cfg)
    return sum(p.numel() for p in model.parameters())


def default_d_ff(cfg: ModelConfig) -> int:
    """The channel mixer's width when ``d_ff`` is 0."""
    probe = CHANNEL_MIXERS.get(cfg.channel)
    with torch.device("meta"):
        layer = probe(cfg.d_model, None)
    return next(m.out_features for m in layer.modules() if isinstance(m, torch.nn.Linear))


def match_params(cfg: ModelConfig, target: int, multiple: int = 4) -> ModelConfig:
    """``cfg`` with the channel mixer's ``d_ff`` (a multiple of ``multiple``) chosen so the model's parameter
    count is as close as possible to ``target``. Parameters grow linearly in d_ff, so two counts fix the line."""
    if cfg.channel == "none":
        raise ConfigError("parameter matching adjusts the channel mixer's d_ff; this model has channel='none'")
    base = cfg.d_ff or default_d_ff(cfg)
    p0, p1 = count_params(dataclasses.replace(cfg, d_ff=base)), count_params(dataclasses.replace(cfg, d_ff=base + 64))
    per_unit = (p1 - p0) / 64
    ideal = base + (target - p0) / per_unit
    below = multiple * int(ideal // multiple)
    candidates = {max(multiple, below), max(multiple, below + multiple)}
    best = min(candidates, key=lambda d: abs(count_params(dataclasses.replace(cfg, d_ff=d)) - target))
    return dataclasses.replace(cfg, d_ff=best)
