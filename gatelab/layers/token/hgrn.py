"""``hgrn``: HGRN's element-wise gated linear recurrence with the per-layer forget-gate lower bound."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ...ops.simple_gla import chunk_simple_gla, recurrent_simple_gla
from ...registry import MIXERS
from ..base import Probe
from .recurrent import GatedRMSNorm, RecurrentMixer, RecurrentOptions, bounded_log_forget


@dataclass(kw_only=True)
class HGRNConfig(RecurrentOptions):
    """Options of ``hgrn``. ``expand_ratio``: the recurrence's width over d_model (flash-linear-attention's default
    1). ``lower_bound``: take the per-layer forget-gate lower bound from the model (HGRN's; False: a plain sigmoid
    gate in every layer). ``n_heads`` is accepted, as every mixer receives it, and unused: the recurrence is
    element-wise."""

    d_model: int
    n_heads: int = 4
    expand_ratio: int = 1
    lower_bound: bool = True

    RANGES: ClassVar[dict[str, str]] = {**RecurrentOptions.RANGES, "d_model": "[1, inf)", "n_heads": "[1, inf)",
                                        "expand_ratio": "[1, inf)"}


@MIXERS.register("hgrn")
class HGRN(RecurrentMixer):
    """HGRN (Qin et al. 2023, "Hierarchically Gated Recurrent Neural Network for Sequence Modeling", arXiv
    2311.04823), as flash-linear-attention's HGRNAttention (the paper's recurrence in real numbers):

    ``f_t = lb + (1 - lb) sigmoid(x_t W_f)`` (computed in log space), ``i_t = silu(x_t W_i) (1 - f_t)``,
    ``h_t = f_t h_{t-1} + i_t`` element-wise over ``D = expand_ratio d_model`` channels,
    ``y_t = W_o (RMSNorm(h_t) silu(x_t W_g))``.

    The layer's lower bound ``lb [D]`` comes from the model (``DecoderLM.lower_bounds``: softmax over the layers,
    cumulative sum, minus the first row; 0 in the first layer), so higher layers forget more slowly. The recurrence
    runs on gatelab's scalar-decay op with one channel per head (``H = D`` heads of key and value width 1), in its
    chunked or recurrent form. Not offered: flash-linear-attention's optional short convolutions on i and f
    (``use_short_conv``, off by default there).

    Input and output ``[B, T, d_model]``; state ``[B, D, 1, 1]``. Parameters: ``3 d_model D`` (i_proj, f_proj,
    g_proj) + ``D`` (the norm) + ``D d_model`` (o_proj); the model adds D per layer (its lower_bounds). The forget
    gates pass through ``forget_gate_probe``."""

    description = "HGRN: element-wise gated linear recurrence, forget-gate lower bound rising with depth"
    paper = "Qin et al. 2023, arXiv 2311.04823"
    Config = HGRNConfig
    chunk_op, recurrent_op = staticmethod(chunk_simple_gla), staticmethod(recurrent_simple_gla)

    def __init__(self, d_model: int, **options):
        super().__init__()
        cfg = self.configure(d_model, options)
        self.config = cfg
        self.width = cfg.expand_ratio * d_model
        self.lower_bound_dim = self.width if cfg.lower_bound else 0
        self.i_proj = nn.Linear(d_model, self.width, bias=False)
        self.f_proj = nn.Linear(d_model, self.width, bias=False)
        self.g_proj = nn.Linear(d_model, self.width, bias=False)
        self.g_norm = GatedRMSNorm(self.width, cfg.norm_eps)
        self.o_proj = nn.Linear(self.width, d_model, bias=False)
        self.forget_gate_probe = Probe()

    def features(self, x, conv_state, offset, lower_bound: torch.Tensor | None = None):
        g = bounded_log_forget(self.f_proj(x), lower_bound)                               # (B, T, D) log f
        if self.forget_gate_probe.active:
            self.forget_gate_probe(g.exp())
        i = F.silu(self.i_proj(x)) * -torch.expm1(g)                                    # (B, T, D): silu(.) (1 - f)
        ones = torch.ones_like(i).unsqueeze(-1)                                          # (B, T, D, 1)
        return (ones, ones, i.unsqueeze(-1)), {"g": g, "scale": 1.0}, x, None            # one channel per head

    def output(self, o, gate, x):
        return self.o_proj(self.g_norm(o.flatten(2), self.g_proj(gate)))                # (B, T, d_model)

    def state_size(self, seq_len: int) -> int:
        return self.width

    def expected_num_params(self) -> int:
        d, D = self.config.d_model, self.width
        return 3 * d * D + D + D * d
