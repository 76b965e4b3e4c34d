"""The pre-norm block: norm -> [short conv] -> token mixer -> residual -> norm -> channel mixer -> residual."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..layers.base import Probe, TokenMixer
from ..layers.channel.base import ChannelMixer
from ..layers.conv import ShortConv
from ..layers.residual import Add, Residual

PENDING = "pending"   # the carry key of a delayed (ladder) residual's output that has not joined the stream yet


class Block(nn.Module):
    """One layer of a sequence model. ``channel`` may be None (mixer-only blocks, as in Zoology's MQAR configs).

    Each branch output joins the stream through a residual connection (``mixer_residual``, ``channel_residual``:
    ``gatelab.layers.residual``, ``x + y`` by default). The stream after each join ``[B, T, d_model]`` passes
    through ``mixer_sum_probe`` / ``channel_sum_probe`` (analysis reads them; simulated quantization replaces them).
    A delayed connection (ladder) does not add the branch output at once: it adds the output still pending from the
    module before and leaves its own pending, in ``carry[PENDING]``; the model adds the last one at the end.

    With ``conv`` (a ``ShortConv``), the normalised input passes through ``h + conv(h)`` before the token mixer:
    gatelab's MQAR protocol, an ungated convolution in every mixer layer. (Zoology's own models instead alternate
    layers of its gated ``base_conv`` with the mixer; ``CompareGrid.pairing`` offers both.)
    ``forward(x, state, step, lower_bound, carry)`` returns ``(x, state)`` with state ``(conv_state, mixer_state)``;
    ``step=True`` sends the token mixer down its decoding path; ``lower_bound`` (``[mixer.lower_bound_dim]``, or
    None) goes to the token mixer (see ``TokenMixer``); ``carry`` is the dict one forward pass of a model hands from
    block to block (pending ladder outputs, a pre-gated router's next routing, the ``"lengths"`` of padded
    sequences). ``dropout`` applies to each branch output in training. ``whole_sequence``: the mixer is non-causal
    (a bidirectional model's) and takes ``carry["lengths"]`` to keep padding out of real positions.
    """

    def __init__(self, mixer: TokenMixer, channel: ChannelMixer | None, norm_factory, conv: ShortConv | None = None,
                 dropout: float = 0.0, residual_factory=None, whole_sequence: bool = False):
        super().__init__()
        self.whole_sequence = whole_sequence
        residual_factory = residual_factory or (lambda: Add(0))
        self.dropout = nn.Dropout(dropout)
        self.mixer_norm, self.conv, self.mixer = norm_factory(), conv, mixer
        self.mixer_residual = residual_factory()
        self.channel_norm = norm_factory() if channel is not None else None
        self.channel = channel
        self.channel_residual = residual_factory() if channel is not None else None
        self.mixer_sum_probe, self.channel_sum_probe = Probe(), Probe()

    def init_state(self, batch_size: int) -> tuple[Any, Any]:
        conv_state = self.conv.init_state(batch_size) if self.conv is not None else None
        return conv_state, self.mixer.init_state(batch_size)

    def forward(self, x: torch.Tensor, state: tuple[Any, Any] | None = None, step: bool = False,
                lower_bound: torch.Tensor | None = None,
                carry: dict[str, Any] | None = None) -> tuple[torch.Tensor, tuple[Any, Any]]:
        carry = {} if carry is None else carry
        conv_state, mixer_state = state if state is not None else (None, None)
        h = self.mixer_norm(x)
        if self.conv is not None:
            c, conv_state = self.conv(h, conv_state)
            h = h + c
        layer_inputs = {} if lower_bound is None else {"lower_bound": lower_bound}
        if self.whole_sequence:
            layer_inputs["lengths"] = carry.get("lengths")
        y, mixer_state = (self.mixer.step if step else self.mixer)(h, mixer_state, **layer_inputs)
        x = self.mixer_sum_probe(_join(self.mixer_residual, x, self.dropout(y), carry))
        if self.channel is not None:
            h = self.channel_norm(x)
            y = self.channel(h, carry) if self.channel.uses_carry else self.channel(h)
            x = self.channel_sum_probe(_join(self.channel_residual, x, self.dropout(y), carry))
        return x, (conv_state, mixer_state)

    def aux_losses(self) -> dict[str, torch.Tensor]:
        """The channel mixer's auxiliary losses from the last training forward (e.g. MoE load balancing)."""
        return dict(self.channel.aux) if self.channel is not None else {}


def _join(residual: Residual, x: torch.Tensor, y: torch.Tensor, carry: dict[str, Any]) -> torch.Tensor:
    """``residual(x, y)``; for a delayed connection, ``x`` plus the pending output, with ``y`` left pending."""
    if not residual.delayed:
        return residual(x, y)
    pending = carry.get(PENDING)
    carry[PENDING] = y
    return x if pending is None else residual(x, pending)


def finish_stream(x: torch.Tensor, carry: dict[str, Any]) -> torch.Tensor:
    """The stream after the last block: a pending (ladder) output joins it."""
    pending = carry.pop(PENDING, None)
    return x if pending is None else x + pending
