"""The shared skeleton of recurrent (linear-attention-family) token mixers: features, op, output.

A subclass turns the input into ``(q, k, v, op_kwargs)`` and an output gate; this class runs the op in the
configured form (``forward``) or the recurrence (``step``), and carries the state.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..base import TokenMixer
from ..conv import ShortConv


@dataclass
class RecurrentState:
    """State of a recurrent mixer: its short convolution's last inputs (or None), the recurrent state
    ``[B, H, K, V]`` (or None before the first token) and the number of tokens seen (for positions)."""

    conv: torch.Tensor | None
    h: torch.Tensor | None
    offset: int = 0


@dataclass(kw_only=True)
class RecurrentOptions:
    """Options every recurrent mixer has.

    mode: the form ``forward`` uses, whatever the length: ``chunk`` (training, prefill) or ``recurrent``;
    ``step`` (decoding) always uses the recurrence. Nothing switches silently.
    """

    mode: Literal["chunk", "recurrent"] = "chunk"
    chunk_size: int = 64
    norm_eps: float = 1e-5

    RANGES: ClassVar[dict[str, str]] = {"chunk_size": "[1, inf)", "norm_eps": "(0, inf)"}


def bounded_log_forget(f_logits: torch.Tensor, lower_bound: torch.Tensor | None) -> torch.Tensor:
    """HGRN's forget gate in log space: ``log f`` with ``f = lb + (1 - lb) * sigmoid(f_logits)`` (Qin et al. 2023,
    arXiv 2311.04823), ``lb [K]`` in [0, 1) broadcast over the last dimension; ``logsigmoid(f_logits)`` without a
    bound. Computed as ``logaddexp(log lb, log(1 - lb) + logsigmoid(.))``, clamped at 0, which rounding can cross
    when lb is near 1."""
    g = F.logsigmoid(f_logits)
    if lower_bound is None:
        return g
    lb = lower_bound.to(g.dtype)
    return torch.logaddexp(lb.log(), torch.log1p(-lb) + g).clamp(max=0.0)


class GatedRMSNorm(nn.Module):
    """``RMSNorm(o) * act(gate)`` per head (``[..., D]``); the output stage of GLA, GDN, RetNet, HGRN2.
    Parameters: ``D``."""

    def __init__(self, dim: int, eps: float, activation: str = "silu"):
        super().__init__()
        self.norm = nn.RMSNorm(dim, eps=eps)
        self.act = {"silu": F.silu, "sigmoid": torch.sigmoid}[activation]

    def forward(self, o: torch.Tensor, gate: torch.Tensor | None) -> torch.Tensor:
        o = self.norm(o)
        return o if gate is None else o * self.act(gate)


class RecurrentMixer(TokenMixer):
    """Base of the recurrent mixers. Subclasses set ``chunk_op``/``recurrent_op`` and implement ``features``
    and ``output``; they may own ``self.conv`` (a ShortConv over their projections, or None)."""

    chunk_op: Any = None
    recurrent_op: Any = None

    @property
    def _conv(self) -> ShortConv | None:
        return self._modules.get("conv")

    def features(self, x: torch.Tensor, conv_state: torch.Tensor | None, offset: int, **layer_inputs: Any
                 ) -> tuple[tuple[torch.Tensor, ...], dict, Any, torch.Tensor | None]:
        """``(op_args, op_kwargs, output_gate, conv_state)`` from ``x [B, T, d_model]``; op_args is ``(q, k, v)``
        for the linear-attention ops. ``layer_inputs``: what the model passes to this layer's forward besides x
        and the state (``lower_bound``, see ``TokenMixer``); only mixers that take them accept them."""
        raise NotImplementedError

    def output(self, o: torch.Tensor, gate: Any, x: torch.Tensor) -> torch.Tensor:
        """``[B, T, d_model]`` from the op's output ``o [B, T, H, V]``."""
        raise NotImplementedError

    def short_conv(self, u: torch.Tensor, conv_state: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """SiLU(short conv(u)) when the mixer has a convolution, else u unchanged."""
        if self._conv is None:
            return u, None
        c, conv_state = self._conv(u, conv_state)
        return F.silu(c), conv_state

    def _run(self, x: torch.Tensor, state: RecurrentState | None, op, layer_inputs: dict
             ) -> tuple[torch.Tensor, RecurrentState]:
        state = state or RecurrentState(None, None, 0)
        args, kw, gate, conv_state = self.features(x, state.conv, state.offset, **layer_inputs)
        o, h = op(*args, **kw, initial_state=state.h, output_final_state=True, chunk_size=self.config.chunk_size)
        return self.output(o, gate, x), RecurrentState(conv_state, h, state.offset + x.shape[1])

    def forward(self, x: torch.Tensor, state: RecurrentState | None = None, **layer_inputs: Any
                ) -> tuple[torch.Tensor, RecurrentState]:
        return self._run(x, state, self.chunk_op if self.config.mode == "chunk" else self.recurrent_op, layer_inputs)

    def step(self, x: torch.Tensor, state: RecurrentState | None, **layer_inputs: Any
             ) -> tuple[torch.Tensor, RecurrentState]:
        return self._run(x, state, self.recurrent_op, layer_inputs)

    def init_state(self, batch_size: int) -> RecurrentState:
        return RecurrentState(self._conv.init_state(batch_size) if self._conv is not None else None, None, 0)

    def conv_state_size(self) -> int:
        return 0 if self._conv is None else self._conv.d_model * (self._conv.kernel_size - 1)
