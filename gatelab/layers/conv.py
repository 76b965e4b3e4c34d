"""Short causal depthwise convolution, with the state that lets it decode token by token."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CausalConv(nn.Module):
    """A causal ``Conv1d`` over time (built by the subclass: any channels, groups, dilation, bias) with the state that
    lets it decode token by token.

    ``forward(x [B, T, d_model], state) -> (y [B, T, C_out], state)``: ``kernel_size`` is the span the conv reads,
    ``(taps - 1) dilation + 1``, so y_t depends on x_{t-span+1..t}. The state is the last ``span - 1`` inputs
    ``[B, span - 1, d_model]`` (zeros before the first token)."""

    def __init__(self, d_model: int, kernel_size: int, conv: nn.Conv1d):
        super().__init__()
        self.d_model, self.kernel_size, self.conv = d_model, kernel_size, conv

    def init_state(self, batch_size: int) -> torch.Tensor:
        w = self.conv.weight
        return w.new_zeros(batch_size, self.kernel_size - 1, self.d_model)

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if state is None:
            padded = F.pad(x, (0, 0, self.kernel_size - 1, 0))                 # (B, k - 1 + T, d)
        else:
            padded = torch.cat([state.to(x.dtype), x], dim=1)                   # (B, k - 1 + T, d)
        y = self.conv(padded.transpose(1, 2)).transpose(1, 2)                   # (B, T, C_out)
        return y, padded[:, padded.shape[1] - (self.kernel_size - 1):]


class ShortConv(CausalConv):
    """Causal depthwise ``Conv1d`` over time with kernel ``kernel_size`` (a few tokens).

    ``forward(x [B, T, d], state) -> (y [B, T, d], state)``: y_t mixes x_{t-k+1..t} channel by channel. The
    state is the last ``k - 1`` inputs ``[B, k - 1, d]`` (zeros before the first token). Parameters:
    ``d * k`` (+ ``d`` with bias). Used ahead of token mixers in gatelab's MQAR protocol (``model.short_conv``)
    and inside mixers that need one (GDN).
    """

    def __init__(self, d_model: int, kernel_size: int, bias: bool = True):
        if kernel_size < 1:
            raise ValueError(f"ShortConv needs kernel_size >= 1; got {kernel_size}")
        super().__init__(d_model, kernel_size, nn.Conv1d(d_model, d_model, kernel_size, groups=d_model, bias=bias))
