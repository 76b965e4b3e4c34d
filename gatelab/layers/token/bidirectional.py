"""The bidirectional form of a causal token mixer: a forward and a reverse scan, averaged as ViG averages its two
directions (Liao et al. 2024, "ViG: Linear-complexity Visual Sequence Learning with Gated Linear Attention",
arXiv 2405.18425), or combined by a learned gate per direction."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ...registry import MIXERS
from ..base import TokenMixer
from ._flip import flip_padded


def bidirectional_mixer(key: str, d_model: int, options: dict[str, Any], params: str = "shared",
                        combine: str = "mean") -> TokenMixer:
    """The bidirectional form of registered mixer ``key``: attention-like mixers (``directions == "both"``)
    built with ``causal=False``, bidirectional-only ones as they are, every causal one as ``Bidirectional`` with
    ``params`` ``"shared"`` (one module scans both ways) or ``"separate"`` (one per direction)."""
    cls = MIXERS.get(key)
    directions = getattr(cls, "directions", "causal")
    if directions == "both":
        return cls(d_model, **{**options, "causal": False})
    if directions == "bidirectional":
        return cls(d_model, **options)
    if params not in ("shared", "separate"):
        raise ValueError(f"bidirectional params {params!r} is not known; choose shared or separate")
    backward = cls(d_model, **options) if params == "separate" else None
    return Bidirectional(cls(d_model, **options), backward, d_model, combine)


class Bidirectional(TokenMixer):
    """Run ``forward_mixer`` over the sequence and ``backward_mixer`` (the same module when the parameters are
    shared) over it reversed, and combine: ``y = (y_f + y_b) / 2`` (``combine="mean"``, ViG's: its official code
    averages the two scans), ``y = g_f * y_f + g_b * y_b`` with ``[g_f, g_b] = sigmoid(x W + b)``
    (``combine="gate"``, gatelab's: one gate per direction and channel from the layer input,
    ``W [d_model, 2 d_model]``, ``b`` zeros so both start at 0.5) or ``y = y_f + y_b`` (``combine="add"``).

    ViG's direction-wise gating gives each direction its own decay gate while sharing q, k and v; for GLA that is
    the ``vig`` mixer. Here, with ``separate`` parameters each direction has all its own gates, and with shared
    ones (the default, so a bidirectional model has its causal form's parameters) the two scans share them.

    The reverse scan reads each right-padded sequence's real tokens last-to-first (``flip_padded`` with the
    ``lengths [B]`` given to ``forward``), so padding never enters its state; the forward scan is causal, so
    padding at the end never reaches a real position. Each direction keeps its chunked or recurrent form.
    Input and output ``[B, T, d_model]``; no decoding state. Parameters: the inner mixer's (twice with
    ``separate`` directions) plus ``2 d_model^2 + 2 d_model`` for the gate.
    """

    directions = "bidirectional"

    def __init__(self, forward_mixer: TokenMixer, backward_mixer: TokenMixer | None, d_model: int,
                 combine: str = "mean"):
        super().__init__()
        if combine not in ("mean", "gate", "add"):
            raise ValueError(f"bidirectional combine {combine!r} is not known; choose mean, gate or add")
        self.forward_mixer, self.backward_mixer, self.combine = forward_mixer, backward_mixer, combine
        self.gate = nn.Linear(d_model, 2 * d_model) if combine == "gate" else None
        if self.gate is not None:
            nn.init.zeros_(self.gate.bias)
        self.description = f"bidirectional {forward_mixer.description}"
        self.paper = forward_mixer.paper
        self.lower_bound_dim = forward_mixer.lower_bound_dim

    def scans(self, x: torch.Tensor, lengths: torch.Tensor | None = None, **layer_inputs: Any
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """The two directions' outputs ``[B, T, d_model]`` each, the backward one back in forward order."""
        y_f, _ = self.forward_mixer(x, **layer_inputs)
        backward = self.backward_mixer if self.backward_mixer is not None else self.forward_mixer
        y_b, _ = backward(flip_padded(x, lengths), **layer_inputs)
        return y_f, flip_padded(y_b, lengths)

    def forward(self, x: torch.Tensor, state: Any = None, lengths: torch.Tensor | None = None,
                **layer_inputs: Any) -> tuple[torch.Tensor, None]:
        if state is not None:
            raise ValueError("a bidirectional mixer reads the whole sequence at once and has no decoding state")
        y_f, y_b = self.scans(x, lengths, **layer_inputs)
        if self.gate is None:
            return (y_f + y_b) / 2 if self.combine == "mean" else y_f + y_b, None
        g_f, g_b = torch.sigmoid(self.gate(x)).chunk(2, dim=-1)                        # (B, T, d_model) each
        return g_f * y_f + g_b * y_b, None

    def step(self, x: torch.Tensor, state: Any, **layer_inputs: Any) -> tuple[torch.Tensor, Any]:
        raise ValueError("a bidirectional mixer cannot decode token by token: it reads the whole sequence")

    def init_state(self, batch_size: int) -> None:
        return None

    def state_size(self, seq_len: int) -> int:
        """What the two scans hold at the end of the sequence together."""
        backward = self.backward_mixer if self.backward_mixer is not None else self.forward_mixer
        return self.forward_mixer.state_size(seq_len) + backward.state_size(seq_len)

    def expected_num_params(self) -> int:
        mixers = [self.forward_mixer] + ([self.backward_mixer] if self.backward_mixer is not None else [])
        gate = 0 if self.gate is None else self.gate.weight.numel() + self.gate.bias.numel()
        return sum(m.expected_num_params() for m in mixers) + gate
