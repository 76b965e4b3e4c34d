"""Convolution-based token mixers: Zoology's gated convolution (``base_conv``) and GAM (``gam``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ...registry import MIXERS
from ..base import Probe, TokenMixer
from ..conv import ShortConv


@dataclass(kw_only=True)
class BaseConvConfig:
    """Options of ``base_conv``: ``kernel_size`` 3 is Zoology's short convolution; a kernel as long as the
    sequence (e.g. 256) is its long, explicit convolution. ``n_heads`` is accepted and unused."""

    d_model: int
    n_heads: int = 1
    kernel_size: int = 3

    RANGES: ClassVar[dict[str, str]] = {"d_model": "[1, inf)", "n_heads": "[1, inf)", "kernel_size": "[1, inf)"}


@MIXERS.register("base_conv")
class BaseConv(TokenMixer):
    """Gated convolution (Arora et al. 2023, Zoology, arXiv 2312.04927): ``y = conv(u) * (u W + b) + u`` with a
    causal depthwise convolution. Its only memory of the past is the kernel's window. Parameters:
    ``d * k + d`` (conv) + ``d^2 + d`` (projection)."""

    description = "gated convolution (Zoology BaseConv): causal depthwise conv times a linear projection"
    paper = "Arora et al. 2023, arXiv 2312.04927"
    Config = BaseConvConfig

    def __init__(self, d_model: int, **options):
        super().__init__()
        self.config = self.configure(d_model, options)
        self.conv = ShortConv(d_model, self.config.kernel_size)
        self.projection = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        c, state = self.conv(x, state)
        return c * self.projection(x) + x, state

    def init_state(self, batch_size: int) -> torch.Tensor:
        return self.conv.init_state(batch_size)

    def state_size(self, seq_len: int) -> int:
        return self.config.d_model * min(seq_len, self.config.kernel_size - 1)

    def expected_num_params(self) -> int:
        d, k = self.config.d_model, self.config.kernel_size
        return d * k + d + d * d + d


@dataclass(kw_only=True)
class GAMConfig:
    """Options of ``gam`` (the paper's code: 512 memory slots, kernel 3). ``n_heads`` is accepted and unused."""

    d_model: int
    n_heads: int = 1
    num_slots: int = 512
    kernel_size: int = 3

    RANGES: ClassVar[dict[str, str]] = {"d_model": "[1, inf)", "n_heads": "[1, inf)", "num_slots": "[1, inf)",
                                        "kernel_size": "[1, inf)"}


@MIXERS.register("gam")
class GatedAssociativeMemory(TokenMixer):
    """Gated Associative Memory (Acharya 2025, arXiv 2509.00605), as its code defines the mixing part of a block:

    ``local = causal depthwise conv(x)``; ``global = softmax(x M^T) M`` with a learned bank M of ``num_slots``
    rows; ``y = sigmoid(g_l) * local + sigmoid(g_g) * global`` with ``(g_l, g_g) = x W + b``. The "memory" is a
    parameter read by each token on its own: nothing is written from the sequence, so the only mixing across
    time is the convolution window. Parameters: ``d * k + d`` (conv) + ``S * d`` (bank) + ``2 d^2 + 2 d``
    (gate). The fusion gates pass through ``gate_probe`` as ``[B, T, 2, d]``.
    """

    description = "GAM: causal conv + a learned memory bank read per token, sigmoid-gated fusion"
    paper = "Acharya 2025, arXiv 2509.00605"
    Config = GAMConfig

    def __init__(self, d_model: int, **options):
        super().__init__()
        cfg = self.configure(d_model, options)
        self.config = cfg
        self.conv = ShortConv(d_model, cfg.kernel_size)
        self.memory = nn.Parameter(nn.init.xavier_uniform_(torch.empty(cfg.num_slots, d_model)))
        self.gate = nn.Linear(d_model, 2 * d_model)
        self.gate_probe = Probe()

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        local, state = self.conv(x, state)                                                # (B, T, d)
        memory = self.memory.to(x.dtype)
        recalled = (x @ memory.T).softmax(-1) @ memory                                   # (B, T, d)
        gates = self.gate_probe(torch.sigmoid(self.gate(x)).unflatten(-1, (2, -1)))      # (B, T, 2, d)
        return gates[:, :, 0] * local + gates[:, :, 1] * recalled, state

    def init_state(self, batch_size: int) -> torch.Tensor:
        return self.conv.init_state(batch_size)

    def state_size(self, seq_len: int) -> int:
        return self.config.d_model * min(seq_len, self.config.kernel_size - 1)

    def expected_num_params(self) -> int:
        c = self.config
        return c.d_model * c.kernel_size + c.d_model + c.num_slots * c.d_model + 2 * c.d_model**2 + 2 * c.d_model
