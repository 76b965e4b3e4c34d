"""LoRA at the trainable-parameter count of initial-state tuning: the rank and the token mixer's projections whose
adapters come closest to the parameters of a model's learned initial states (``gatelab.models.initial_state``).

LoRA adapts a linear layer ``in -> out`` at rank ``r`` with ``r * (in + out)`` parameters (Hu et al. 2021, arXiv
2106.09685), so a count is reached by the choice of rank and of layers. The candidates are every non-empty set of
the token mixer's projections (``mixer.<name>``: q/k/v/o/g of GLA, in/out of Mamba-2; not the factors of a
low-rank gate such as ``mixer.gk_proj.0``) at every rank. The closest count wins; among equally close ones, more
layers at a lower rank (LoRA's Table 5: at one budget, adapting more weight types at a lower rank beats one type at
a higher rank), then q and v first (that table's best pair), then k, o and the others by name."""
from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass

import torch
from torch import nn

from ...config import ConfigError
from ...models.config import ModelConfig
from ...models.initial_state import PREFIX
from .lora import linear_names, lora_targets

PREFERENCE = ("q_proj", "v_proj", "k_proj", "o_proj")


@dataclass(frozen=True)
class LoRAMatch:
    """``targets`` (module-name suffixes for ``LoRAConfig.targets``) at ``rank`` train ``params`` parameters, the
    closest to ``budget`` (the initial states'); ``exact`` when equal."""

    rank: int
    targets: tuple[str, ...]
    params: int
    budget: int

    @property
    def exact(self) -> bool:
        return self.params == self.budget


def _meta_model(cfg: ModelConfig) -> nn.Module:
    from ...models.lm import DecoderLM

    with torch.device("meta"):
        return DecoderLM(dataclasses.replace(cfg, learned_initial_state=True))


def initial_state_params(cfg: ModelConfig) -> int:
    """The parameters ``tune=initial_state`` trains in a model of ``cfg``: one memory per recurrent layer; a
    ConfigError if no layer has one."""
    try:
        model = _meta_model(cfg)
    except ConfigError:
        raise ConfigError(f"mixer {cfg.mixer!r} keeps no recurrent memory, so it has no initial state to learn "
                          "(gatelab.models.initial_state lists those that do)") from None
    return sum(p.numel() for n, p in model.named_parameters() if n.startswith(PREFIX + "."))


def lora_params(model: nn.Module, targets: list[str] | tuple[str, ...], rank: int) -> int:
    """The parameters LoRA at ``rank`` on the linear layers ``targets`` selects trains: ``rank * (in + out)`` each."""
    layers = dict(model.named_modules())
    return sum(rank * (layers[n].in_features + layers[n].out_features) for n in lora_targets(model, list(targets)))


def mixer_projections(model: nn.Module) -> list[str]:
    """The token mixer's own linear layers as target suffixes (``mixer.q_proj``), in LoRA's order of preference."""
    own = [n for n in linear_names(model) if n.startswith("mixer.") and n.count(".") == 1]
    order = {f"mixer.{p}": i for i, p in enumerate(PREFERENCE)}
    return sorted(own, key=lambda n: (order.get(n, len(order)), n))


def matched_lora(cfg: ModelConfig) -> LoRAMatch:
    """The LoRA whose trainable parameters come closest to the initial states' of a model of ``cfg`` (module
    docstring: ties go to more layers at a lower rank, then to q, v, k, o)."""
    budget = initial_state_params(cfg)
    model = _meta_model(cfg)
    projections = mixer_projections(model)
    if not projections:
        raise ConfigError(f"mixer {cfg.mixer!r} has no linear projections of its own for LoRA to adapt")
    candidates = []
    for size in range(1, len(projections) + 1):
        for targets in itertools.combinations(projections, size):
            per_rank = lora_params(model, targets, 1)
            for rank in {max(1, math.floor(budget / per_rank)), math.ceil(budget / per_rank)}:
                candidates.append(LoRAMatch(rank, targets, rank * per_rank, budget))
    return min(candidates, key=lambda m: (abs(m.params - budget), -len(m.targets),
                                          [projections.index(t) for t in m.targets]))
