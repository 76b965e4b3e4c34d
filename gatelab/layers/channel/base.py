"""The channel-mixer protocol (DESIGN §3, §9): a position-wise layer ``forward(x [B, T, d_model]) -> y`` with
optional auxiliary losses, routing statistics, a training-progress hook and an active-parameter count."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..base import build_config


class ChannelMixer(nn.Module):
    """A layer that mixes the channels of each token on its own.

    Subclasses implement ``forward(x)`` with x, y ``[B, T, d_model]`` (``forward(x, carry)`` when ``uses_carry``) and
    take ``__init__(d_model, d_ff=None, **options)``: ``d_ff`` is the layer's width (for a mixture of experts, each
    expert's), None meaning the layer's own default. Options go through a ``Config`` dataclass (``configure``), so
    unknown keys, wrong types and numbers outside ``Config.RANGES`` are errors naming the option.

    Everything below has a default that suits a dense layer:

    - ``aux``: the auxiliary losses of the last training forward, each already multiplied by its coefficient
      (``{"balance": ..., "z": ...}`` for a mixture of experts). The model sums them over layers per name, the
      training loop adds them to the loss and logs each one separately.
    - ``stats()`` / ``reset_stats()``: statistics accumulated over the forwards since the last reset (experts per
      token, dropped-token fraction, router entropy, expert load, active fraction, ...), floats or lists of floats.
    - ``on_train_step(step, max_steps)``: called by the training loop before every step (temperature schedules);
      returns the parameters ``[E, ...]`` whose rows 1.. it has just made copies of row 0 (EvoMoE's spawn), so the
      loop copies row 0's optimiser state to them too, or an empty list.
    - ``may_skip_parameters``: some parameters may take no part in a forward (a router not used yet, the last
      pre-gate): data-parallel training then looks for unused parameters.
    - ``active_params()``: the parameters one token uses (a mixture of experts: the router, the shared expert and
      top_k experts); parameter matching of sparse layers compares these.
    - ``uses_carry``: the layer takes ``forward(x, carry)``, where ``carry`` is a dict that one forward pass of a
      model hands from block to block (a pre-gated router computes the next block's routing there).
    """

    description: str = ""
    paper: str = ""
    uses_carry: bool = False
    may_skip_parameters: bool = False
    d_ff: int            # the resolved width (set by every subclass): parameter matching starts from it
    d_ff_multiple: int = 1   # what d_ff must be a multiple of (groups, chains or learners that split it)

    def __init__(self) -> None:
        super().__init__()
        self.aux: dict[str, torch.Tensor] = {}

    def stats(self) -> dict[str, Any]:
        return {}

    def reset_stats(self) -> None:
        pass

    def on_train_step(self, step: int, max_steps: int) -> list[nn.Parameter]:
        return []

    def active_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def expected_num_params(self) -> int:
        """The parameter count from the formula in the class docstring (the harness checks it)."""
        raise NotImplementedError

    def configure(self, d_model: int, options: dict[str, Any]) -> Any:
        """This layer's Config from keyword options (``d_model`` included)."""
        return build_config(self.Config, type(self).__name__, d_model=d_model, **options)
