"""The pre-norm residual block: norm -> [short conv] -> token mixer -> residual -> norm -> channel mixer -> residual."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..layers.base import Probe, TokenMixer
from ..layers.conv import ShortConv


class Block(nn.Module):
    """One layer of a sequence model. ``channel`` may be None (mixer-only blocks, as in Zoology's MQAR configs).
    The residual sums after the token mixer and after the channel mixer ``[B, T, d_model]`` pass through
    ``mixer_sum_probe`` and ``channel_sum_probe`` (analysis reads them; simulated quantization replaces them).

    With ``conv`` (a ``ShortConv``), the normalised input passes through ``h + conv(h)`` before the token mixer:
    gatelab's MQAR protocol, an ungated convolution in every mixer layer. (Zoology's own models instead alternate
    layers of its gated ``base_conv`` with the mixer; ``CompareGrid.pairing`` offers both.)
    ``forward(x, state, step, lower_bound)`` returns ``(x, state)`` with state ``(conv_state, mixer_state)``;
    ``step=True`` sends the token mixer down its decoding path; ``lower_bound`` (``[mixer.lower_bound_dim]``, or
    None) goes to the token mixer (see ``TokenMixer``). ``dropout`` applies to each residual branch in training.
    """

    def __init__(self, mixer: TokenMixer, channel: nn.Module | None, norm_factory, conv: ShortConv | None = None,
                 dropout: float = 0.0):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.mixer_norm, self.conv, self.mixer = norm_factory(), conv, mixer
        self.channel_norm = norm_factory() if channel is not None else None
        self.channel = channel
        self.mixer_sum_probe, self.channel_sum_probe = Probe(), Probe()

    def init_state(self, batch_size: int) -> tuple[Any, Any]:
        conv_state = self.conv.init_state(batch_size) if self.conv is not None else None
        return conv_state, self.mixer.init_state(batch_size)

    def forward(self, x: torch.Tensor, state: tuple[Any, Any] | None = None, step: bool = False,
                lower_bound: torch.Tensor | None = None) -> tuple[torch.Tensor, tuple[Any, Any]]:
        conv_state, mixer_state = state if state is not None else (None, None)
        h = self.mixer_norm(x)
        if self.conv is not None:
            c, conv_state = self.conv(h, conv_state)
            h = h + c
        layer_inputs = {} if lower_bound is None else {"lower_bound": lower_bound}
        y, mixer_state = (self.mixer.step if step else self.mixer)(h, mixer_state, **layer_inputs)
        x = x + self.dropout(y)
        x = self.mixer_sum_probe(x)
        if self.channel is not None:
            x = x + self.dropout(self.channel(self.channel_norm(x)))
            x = self.channel_sum_probe(x)
        return x, (conv_state, mixer_state)

    def aux_loss(self) -> torch.Tensor | None:
        """The channel mixer's auxiliary loss from the last forward (e.g. MoE load balancing), if it has one."""
        return getattr(self.channel, "aux_loss", None)
