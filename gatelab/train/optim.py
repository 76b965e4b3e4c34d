"""AdamW with parameter groups, and the warmup + cosine learning-rate schedule."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ..layers.base import NO_WEIGHT_DECAY


@dataclass(kw_only=True)
class OptimConfig:
    """AdamW and its schedule: linear warmup over ``warmup_frac`` of the steps, then cosine to
    ``min_lr_ratio * lr``. ``grad_clip`` 0 disables clipping."""

    lr: float = 1e-3
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    warmup_frac: float = 0.1
    min_lr_ratio: float = 0.0
    grad_clip: float = 1.0

    RANGES: ClassVar[dict[str, str]] = {"lr": "(0, inf)", "weight_decay": "[0, inf)", "beta1": "[0, 1)",
                                        "beta2": "[0, 1)", "eps": "(0, inf)", "warmup_frac": "[0, 1)",
                                        "min_lr_ratio": "[0, 1]", "grad_clip": "[0, inf)"}


def marked_no_weight_decay(model: nn.Module) -> set[str]:
    """Names of the parameters explicitly exempted from weight decay: those a layer names with
    ``gatelab.layers.base.no_weight_decay``, and those carrying mamba_ssm's and flash-linear-attention's own
    mark (``param._no_weight_decay = True``, for modules taken from those libraries)."""
    marked = {id(getattr(module, name, None)) for _, module in model.named_modules()
              for name in getattr(module, NO_WEIGHT_DECAY, ())}
    return {name for name, p in model.named_parameters()
            if id(p) in marked or getattr(p, "_no_weight_decay", False)}


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.AdamW:
    """AdamW with two groups: weight decay on every parameter of 2 or more dims, none on 1-D parameters (norm
    weights, biases, gate biases) and on the parameters marked as exempt (``marked_no_weight_decay``: Mamba's
    A_log, D, dt_bias, ...)."""
    exempt = marked_no_weight_decay(model)
    decay, plain = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (plain if p.dim() < 2 or name in exempt else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": plain, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps)


def lr_at(step: int, total_steps: int, cfg: OptimConfig) -> float:
    """Learning rate at ``step`` (0-based) of ``total_steps``."""
    warmup = int(cfg.warmup_frac * total_steps)
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total_steps - warmup)
    floor = cfg.min_lr_ratio * cfg.lr
    return floor + (cfg.lr - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
