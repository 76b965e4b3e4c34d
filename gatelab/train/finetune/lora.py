"""LoRA adapters through ``peft`` (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models", arXiv
2106.09685): ``W x + (alpha / rank) * B A x`` on the chosen linear layers, with ``A [rank, in]`` initialised as
peft does (Kaiming uniform) and ``B [out, rank]`` at zeros, so the adapted model starts equal to the original;
only A and B train. The saved model merges ``B A`` into the weights: a plain gatelab model."""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import ClassVar

from torch import nn

from ...config import ConfigError


@dataclass(kw_only=True)
class LoRAConfig:
    """``train.tune=lora``: adapters of rank ``rank`` scaled by ``alpha / rank``, dropout ``dropout`` on their input,
    on every linear layer whose module name ends with one of ``targets`` (a name such as ``q_proj`` or a longer
    suffix such as ``mixer.q_proj``). Each adapter trains ``rank * (in + out)`` parameters, so the rank and the
    targets set the count (to match another method's)."""

    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    targets: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj"])

    RANGES: ClassVar[dict[str, str]] = {"rank": "[1, inf)", "alpha": "(0, inf)", "dropout": "[0, 1)"}

    def check(self) -> None:
        if not self.targets or not all(t.strip(". ") for t in self.targets):
            raise ConfigError(f"lora.targets={self.targets!r}: give module-name suffixes of linear layers, such as "
                              '["q_proj", "k_proj", "v_proj"]')


def _suffix_matches(name: str, target: str) -> bool:
    return name == target or name.endswith("." + target)


def linear_names(model: nn.Module) -> list[str]:
    """The linear layers of ``model`` as a target may name them: module names without the ``blocks.<i>.`` prefix."""
    return sorted({re.sub(r"^blocks\.\d+\.", "", n) for n, m in model.named_modules() if isinstance(m, nn.Linear)})


def lora_targets(model: nn.Module, targets: list[str]) -> list[str]:
    """The full names of the linear layers ``targets`` select; a target that selects none, or a tied LM head (its
    weight is the embedding's, which a merge would change too), is a ConfigError naming it and the linear layers
    that exist."""
    linear = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    for target in targets:
        if not any(_suffix_matches(n, target) for n in linear):
            raise ConfigError(f"lora.targets: {target!r} names no linear layer of this model; its linear layers are "
                              f"{', '.join(linear_names(model))}")
    chosen = [n for n in linear if any(_suffix_matches(n, t) for t in targets)]
    head = getattr(model, "head", None)
    if "head" in chosen and head is not None and head.weight is getattr(getattr(model, "embed", None), "weight", None):
        raise ConfigError("lora.targets selects head, whose weight is the embedding's (model.tie_embeddings): "
                          "an adapter merged into it would change the embedding too; leave head out")
    return chosen


def add_lora(model: nn.Module, cfg: LoRAConfig) -> nn.Module:
    """Put adapters on ``model``'s chosen linear layers, in place (the model keeps its class and forward), and
    freeze every other parameter; returns peft's LoraModel, whose ``merge_and_unload`` gives the merged model."""
    try:
        from peft import LoraConfig
        from peft.tuners.lora import LoraModel
    except ImportError:
        raise ConfigError('tune=lora needs the peft package: pip install -e ".[pretrained]"') from None
    names = lora_targets(model, cfg.targets)
    config = LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, target_modules=names,
                        bias="none", init_lora_weights=True)
    return LoraModel(model, config, "default")


def merged_copy(tuner: nn.Module) -> nn.Module:
    """A copy of the adapted model with every adapter merged into its layer's weight (the original keeps
    training)."""
    return copy.deepcopy(tuner).merge_and_unload()
