"""How a run's model trains (``TrainConfig.tune``): every weight (``full``), LoRA adapters (``lora``, see
``lora.py``) or a learned initial state per recurrent layer (``initial_state``, see
``gatelab.models.initial_state``), starting from the weights of ``init_from`` where given."""
from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from ...models.initial_state import PREFIX
from .lora import add_lora, merged_copy
from .source import load_source_weights

if TYPE_CHECKING:
    from ..config import TrainConfig


class Tuning:
    """The model a run trains, set up for ``cfg.tune`` (in place): ``init_from``'s weights loaded, adapters added
    (lora) or everything but the learned initial states frozen (initial_state). ``saved()`` is the model to save:
    for LoRA a copy with the adapters merged into the weights, else the model itself."""

    def __init__(self, model: nn.Module, cfg: TrainConfig):
        self.model, self._lora = model, None
        if cfg.init_from:
            load_source_weights(model, cfg.init_from)
        if cfg.tune == "lora":
            self._lora = add_lora(model, cfg.lora)
        elif cfg.tune == "initial_state":
            for name, p in model.named_parameters():
                p.requires_grad_(name.startswith(PREFIX + "."))

    def saved(self) -> nn.Module:
        return merged_copy(self._lora) if self._lora is not None else self.model

    def trainable_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters() if p.requires_grad)
