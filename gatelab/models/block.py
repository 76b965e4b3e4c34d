"""The pre-norm residual block: norm -> token mixer -> residual -> norm -> channel mixer -> residual."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..layers.base import TokenMixer


class Block(nn.Module):
    """One layer of a sequence model. ``channel`` may be None (mixer-only blocks, as in Zoology's MQAR configs).

    ``forward(x, state, step)`` returns ``(x, state)``; ``step=True`` sends the token mixer down its decoding path.
    """

    def __init__(self, mixer: TokenMixer, channel: nn.Module | None, norm_factory):
        super().__init__()
        self.mixer_norm, self.mixer = norm_factory(), mixer
        self.channel_norm = norm_factory() if channel is not None else None
        self.channel = channel

    def forward(self, x: torch.Tensor, state: Any = None, step: bool = False) -> tuple[torch.Tensor, Any]:
        h = self.mixer_norm(x)
        y, state = self.mixer.step(h, state) if step else self.mixer(h, state)
        x = x + y
        if self.channel is not None:
            x = x + self.channel(self.channel_norm(x))
        return x, state

    def aux_loss(self) -> torch.Tensor | None:
        """The channel mixer's auxiliary loss from the last forward (e.g. MoE load balancing), if it has one."""
        return getattr(self.channel, "aux_loss", None)
