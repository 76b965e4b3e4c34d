"""``fsmn``: MossFormer2's gated dilated FSMN memory block, causal."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ...registry import MIXERS
from ..base import TokenMixer
from ..conv import CausalConv, ShortConv

FSMNState = tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]]


@dataclass(kw_only=True)
class FSMNConfig:
    """Options of ``fsmn``. ``inner_dim``: the block's width (MossFormer2's ``inner_channels``, 256 for its 512
    model; None: d_model // 2). ``lorder``: the memory's taps per dilated layer, the current token and
    ``lorder - 1`` earlier ones (the code's 20; its kernel ``2 lorder - 1`` also reads ``lorder - 1`` later ones).
    ``depth``: the dilated layers, dilation ``2^i`` in layer i (the code's 2). ``conv_kernel_size``: the taps of
    the convolution in each gated convolutional unit (9: the past half of the code's 17). ``n_heads`` is
    accepted, as every mixer receives it, and unused."""

    d_model: int
    n_heads: int = 1
    inner_dim: int | None = None
    lorder: int = 20
    depth: int = 2
    conv_kernel_size: int = 9

    RANGES: ClassVar[dict[str, str]] = {"d_model": "[1, inf)", "n_heads": "[1, inf)", "inner_dim": "[1, inf)",
                                        "lorder": "[1, 1024]", "depth": "[1, 16]", "conv_kernel_size": "[1, 1024]"}


class DilatedCausalConv(CausalConv):
    """A causal ``Conv1d`` with dilation and groups, no bias: ``[B, T, C_in] -> [B, T, C_out]``; the state is the
    last ``(kernel_size - 1) dilation`` inputs (the span it reads)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int, groups: int):
        super().__init__(in_channels, (kernel_size - 1) * dilation + 1,
                         nn.Conv1d(in_channels, out_channels, kernel_size, dilation=dilation, groups=groups,
                                   bias=False))


class ConvUnit(nn.Module):
    """MossFormer2's gated convolutional unit's branch (FFConvM): ``z = silu(W LayerNorm(x) + b)``,
    ``z + dwconv(z)`` with a causal depthwise convolution (the code's ConvModule). Parameters:
    ``2 d_in + d_in d_out + d_out + k d_out``."""

    def __init__(self, dim_in: int, dim_out: int, kernel_size: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim_in)
        self.linear = nn.Linear(dim_in, dim_out)
        self.conv = ShortConv(dim_out, kernel_size, bias=False)

    def forward(self, x: torch.Tensor, state: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        z = F.silu(self.linear(self.norm(x)))                                        # (B, T, d_out)
        c, state = self.conv(z, state)
        return z + c, state


class DilatedDense(nn.Module):
    """The code's DilatedDenseNet, causal: layer i reads the concatenation of every earlier layer's output and
    the input (newest first, ``(i + 1) C`` channels) with a grouped convolution (C groups, lorder taps, dilation
    ``2^i``), then a per-channel affine map and PReLU; returns the last layer's output ``[B, T, C]``. Parameters per
    layer: ``(i + 1) C lorder + 3 C``."""

    def __init__(self, channels: int, lorder: int, depth: int):
        super().__init__()
        self.convs = nn.ModuleList(DilatedCausalConv((i + 1) * channels, channels, lorder, 2**i, channels)
                                   for i in range(depth))
        self.weights = nn.ParameterList(nn.Parameter(torch.ones(channels)) for _ in range(depth))
        self.biases = nn.ParameterList(nn.Parameter(torch.zeros(channels)) for _ in range(depth))
        self.slopes = nn.ParameterList(nn.Parameter(torch.full((channels,), 0.25)) for _ in range(depth))  # PReLU

    def forward(self, x: torch.Tensor, states: tuple[torch.Tensor | None, ...]
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        skip, new_states = x, []
        for conv, w, b, slope, state in zip(self.convs, self.weights, self.biases, self.slopes, states, strict=True):
            out, state = conv(skip, state)                                           # (B, T, C)
            out = out * w + b
            out = out.clamp(min=0) + slope * out.clamp(max=0)                        # PReLU over channels
            skip = torch.cat([out, skip], -1)                                        # (B, T, (i + 2) C)
            new_states.append(state)
        return out, tuple(new_states)


@MIXERS.register("fsmn")
class GatedFSMN(TokenMixer):
    """MossFormer2's gated dilated FSMN block (Zhao et al. 2024, "MossFormer2: Combining Transformer and RNN-Free
    Recurrent Network for Enhanced Time-Domain Monaural Speech Separation", arXiv 2312.11825), as the official
    ``Gated_FSMN_Block_Dilated`` (alibabasglab/ClearerVoice-Studio, ``mossformer2_block.py`` and ``fsmn.py``),
    causal. With C = inner_dim:

    ``a = LayerNorm(prelu(W_1 x + b_1))``; the gated convolutional units ``u = ConvUnit_u(a)``,
    ``v = ConvUnit_v(a)``; the memory (UniDeepFsmn_dilated) ``f = u + DilatedDense(W_p relu(W_h u + b_h))``;
    ``g = v ⊙ f + a``; ``y = W_2 LayerNorm(g) + b_2``. The dilated dense layers are the "RNN-free recurrence":
    a token reaches back ``(conv_kernel_size - 1) + (lorder - 1)(2^depth - 1)`` tokens.

    Made causal: every convolution reads only the current and earlier tokens (the code pads both sides: its
    kernels ``2 lorder - 1`` and 17 are centred); the dense layers' InstanceNorm, whose statistics span the whole
    sequence, is reduced to its per-channel affine map. The block's own residual (``+ x``) is the model's; dropout
    is the model's.

    Input and output ``[B, T, d_model]``; state: the convolutions' last inputs, ``(u tail [B, k - 1, C],
    v tail [B, k - 1, C], (dense layer i's [B, (lorder - 1) 2^i, (i + 1) C], ...))``. Parameters, with
    ``L = lorder``, ``D = depth``, ``k = conv_kernel_size``: ``d C + C + 1`` (W_1, PReLU) + ``4 C`` (two norms) +
    ``2 (C^2 + 3 C + k C)`` (two units) + ``2 C^2 + C`` (W_h, W_p) + ``C L D (D + 1) / 2 + 3 C D`` (dense layers) +
    ``C d + d`` (W_2)."""

    description = "MossFormer2 gated FSMN: gated conv units and a dilated dense causal memory (RNN-free recurrence)"
    paper = "Zhao et al. 2024, arXiv 2312.11825"
    Config = FSMNConfig

    def __init__(self, d_model: int, **options):
        super().__init__()
        cfg = self.configure(d_model, options)
        self.config = cfg
        self.inner = max(1, d_model // 2) if cfg.inner_dim is None else cfg.inner_dim
        C = self.inner
        self.in_proj = nn.Linear(d_model, C)
        self.in_act = nn.PReLU()
        self.in_norm = nn.LayerNorm(C)
        self.to_u = ConvUnit(C, C, cfg.conv_kernel_size)
        self.to_v = ConvUnit(C, C, cfg.conv_kernel_size)
        self.hidden = nn.Linear(C, C)
        self.project = nn.Linear(C, C, bias=False)
        self.memory = DilatedDense(C, cfg.lorder, cfg.depth)
        self.out_norm = nn.LayerNorm(C)
        self.out_proj = nn.Linear(C, d_model)

    def forward(self, x: torch.Tensor, state: FSMNState | None = None) -> tuple[torch.Tensor, FSMNState]:
        u_state, v_state, memory_state = state if state is not None else (None, None, (None,) * self.config.depth)
        a = self.in_norm(self.in_act(self.in_proj(x)))                               # (B, T, C)
        u, u_state = self.to_u(a, u_state)
        v, v_state = self.to_v(a, v_state)
        m, memory_state = self.memory(self.project(F.relu(self.hidden(u))), memory_state)
        g = v * (u + m) + a                                                          # (B, T, C)
        return self.out_proj(self.out_norm(g)), (u_state, v_state, memory_state)

    def init_state(self, batch_size: int) -> FSMNState:
        units = (self.to_u.conv.init_state(batch_size), self.to_v.conv.init_state(batch_size))
        return (*units, tuple(conv.init_state(batch_size) for conv in self.memory.convs))

    def receptive_field(self) -> int:
        """How many tokens back an output reaches (its own token excluded)."""
        c = self.config
        return (c.conv_kernel_size - 1) + (c.lorder - 1) * (2**c.depth - 1)

    def state_size(self, seq_len: int) -> int:
        c, C = self.config, self.inner
        units = 2 * C * min(seq_len, c.conv_kernel_size - 1)
        return units + sum((i + 1) * C * min(seq_len, (c.lorder - 1) * 2**i) for i in range(c.depth))

    def expected_num_params(self) -> int:
        c, d, C = self.config, self.config.d_model, self.inner
        L, D, k = c.lorder, c.depth, c.conv_kernel_size
        return (d * C + C + 1 + 4 * C + 2 * (C * C + 3 * C + k * C) + 2 * C * C + C
                + C * L * D * (D + 1) // 2 + 3 * C * D + C * d + d)
