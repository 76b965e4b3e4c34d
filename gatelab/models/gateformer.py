"""Gateformer: per-variate temporal embeddings gated with variate-wise attention (Gateformer, 2025, "Gateformer:
Advancing Multivariate Time Series Forecasting through Temporal and Variate-Wise Attention with Gated
Representations", arXiv 2505.00307; official code nyuolab/Gateformer, ``models/Gateformer.py``), as a gatelab
forecaster whose temporal encoder is any mixer schedule of the ``model`` config."""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ConfigError, check_ranges
from ..registry import MIXERS
from .config import ModelConfig
from .forecaster import Forecaster, ForecasterConfig
from .stack import BlockStack, TaskOutput

EPS = 1e-5   # the instance normalisation's epsilon, as the official code


def instance_norm(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each variate of ``x [B, L, C]`` centred and divided by ``sqrt(var + 1e-5)`` over its lookback (biased
    variance, no affine): ``(x_norm [B, L, C], mean [B, 1, C], std [B, 1, C])``; the statistics in float32 or wider,
    ``x_norm`` in the dtype of ``x``."""
    wide = x.to(torch.promote_types(x.dtype, torch.float32))
    mean = wide.mean(1, keepdim=True)                                                      # (B, 1, C)
    centred = wide - mean
    std = torch.sqrt(centred.var(1, keepdim=True, unbiased=False) + EPS)                   # (B, 1, C)
    return (centred / std).to(x.dtype), mean, std


def n_patches(lookback: int, patch_len: int) -> int:
    """Patches per variate: the series padded at its end by one stride (= patch_len), cut with stride patch_len."""
    return (lookback - patch_len) // patch_len + 2


def cut_patches(series: torch.Tensor, patch_len: int) -> torch.Tensor:
    """``series [M, L]`` padded at its end with ``patch_len`` copies of its last value, cut into
    ``[M, N, patch_len]`` non-overlapping patches (N = ``n_patches(L, patch_len)``)."""
    padded = torch.cat([series, series[:, -1:].expand(-1, patch_len)], dim=1)            # (M, L + P)
    return padded.unfold(-1, patch_len, patch_len)                                        # (M, N, P)


def sinusoidal_positions(n: int, d: int) -> torch.Tensor:
    """Vaswani et al.'s table ``[n, d]``: ``sin`` in even channels, ``cos`` in odd ones, at ``10000^(-2i/d)``."""
    position = torch.arange(n, dtype=torch.float64)[:, None]                              # (n, 1)
    freq = torch.exp(torch.arange(0, d, 2, dtype=torch.float64) * (-math.log(10000.0) / d))  # (ceil(d/2),)
    table = torch.zeros(n, d, dtype=torch.float64)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq[: d // 2])
    return table.float()


class Gate(nn.Module):
    """Gateformer's gated fusion of two representations ``a, b [..., d]``:
    ``z = sigmoid(a W_a^T + b_a + b W_b^T + b_b)``, output ``z * a + (1 - z) * b``. Parameters ``2 d^2 + 2 d``."""

    def __init__(self, d: int):
        super().__init__()
        self.w_a, self.w_b = nn.Linear(d, d), nn.Linear(d, d)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        z = torch.sigmoid(self.w_a(a) + self.w_b(b))
        return z * a + (1 - z) * b


class VariateEncoder(BlockStack):
    """Gateformer's variate-wise encoder: ``model``'s blocks (channel mixers, norms, residuals, dropout) with
    bidirectional softmax attention and no positions (``attn`` with ``causal=False``, ``rope=False``) as every
    token mixer, over the variate tokens ``[B, C, d_model]``; no final norm (as the official encoder)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self._check_config(dataclasses.replace(config, mixer="attn", mixer_options={"attn": {"rope": False}},
                                               bidirectional=True, short_conv=0))
        self._build_stack()
        self.norm = nn.Identity()


def temporal_config(config: ModelConfig) -> ModelConfig:
    """``config`` with RoPE off in every scheduled mixer that has it, unless ``mixer_options`` sets ``rope``: the
    patch tokens carry sinusoidal positions, as in the official code (its encoder has no other positions)."""
    options = {key: dict(value) for key, value in config.mixer_options.items()}
    for key in set(config.schedule()):
        mixer_config = getattr(MIXERS.get(key), "Config", None)
        if mixer_config is not None and "rope" in {f.name for f in dataclasses.fields(mixer_config)}:
            options[key] = {"rope": False, **options.get(key, {})}
    return dataclasses.replace(config, mixer_options=options)


class Gateformer(BlockStack):
    """Forecast ``labels [B, horizon, n_out]`` from ``inputs [B, lookback, n_in]`` with Gateformer.

    Each variate's lookback is instance-normalised (``instance_norm``) and embedded twice (per variate, batch B C):
    globally, ``g = Dropout(Linear(L, d)(x_c))``; and by its temporal dependencies: the series is replicate-padded
    by one stride at its end and cut into N = ``(L - P) // P + 2`` patches of P = ``forecaster.patch_len`` steps
    (stride P: 13 at L = 96, P = 8), each ``Linear(P, d, no bias)`` plus sinusoidal positions, dropout, then this
    model's own blocks (the ``model`` config: any mixer schedule, causal or bidirectional as it says), flattened
    ``[d, N] -> Linear(d N, d)``, dropout: ``t``. Gate 1 fuses them, ``e = Gate(g, t)`` (``Gate``:
    ``z = sigmoid(W1 g + b1 + W2 t + b2)``, ``z g + (1 - z) t``); the ``VariateEncoder`` attends over the C
    variate tokens, ``c``; gate 2, ``h = Gate(e, c)``; the head ``Linear(d, horizon)``, shared by the variates,
    gives ``[B, horizon, C]``, de-normalised with each variate's mean and std, of which the variates ``out_index``
    are returned. ``forward(inputs, labels=None)`` returns the forecasts (float32 or wider) and their mean squared
    error.

    As the official code: no final norm after either encoder; dropout ``model.dropout`` on both embeddings, the
    flatten head and every block branch. Where gatelab differs: the blocks are gatelab's (``model.norm``,
    ``model.channel``; the official layers are torch's pre-norm ``TransformerEncoderLayer``: LayerNorm, attention
    with biases and dropout on its weights, a ReLU MLP of width d_ff; the closest config is
    ``norm=layernorm, channel=mlp``, GELU; its temporal encoder attends both ways: ``model.bidirectional=true``);
    the stride is ``patch_len`` (the official code has its own stride option; its scripts use 8 for both). RoPE
    is off in the temporal mixers that have it (``attn``, ``gated_attn``, ...) unless
    ``model.mixer_options.<key>.rope`` says otherwise, since the patches carry sinusoidal positions.

    Parameters: global ``L d + d``; patches ``P d``; temporal blocks; flatten ``N d^2 + d``; gates
    ``4 (d^2 + d)``; variate blocks (``attn`` without RoPE, ``model``'s channel mixers and norms); head
    ``d horizon + horizon``. At the ETTh1 script sizes (L = 96, d = d_ff = 64, 4 heads, 1 layer, horizon 96,
    7 variates) with ``norm=layernorm, channel=mlp``: 132,832; the official model has 133,344, the ``4 d``
    attention biases per layer more.
    """

    def __init__(self, config: ModelConfig, head: ForecasterConfig, lookback: int, horizon: int, n_in: int,
                 out_index: list[int]):
        super().__init__()
        check_ranges(head, "forecaster")
        if head.patch_len > lookback:
            raise ConfigError(f"forecaster.patch_len={head.patch_len} is longer than the lookback of {lookback} "
                              "steps; choose a patch_len <= the lookback (Gateformer: 8)")
        self._check_config(temporal_config(config))
        self.head_config, self.lookback, self.horizon, self.n_in = head, lookback, horizon, n_in
        self.register_buffer("out_index", torch.tensor(out_index, dtype=torch.long), persistent=False)
        d, P = config.d_model, head.patch_len
        self.n_patches = n_patches(lookback, P)
        self.global_embed = nn.Linear(lookback, d)
        self.patch_embed = nn.Linear(P, d, bias=False)
        self.register_buffer("positions", sinusoidal_positions(self.n_patches, d), persistent=False)
        self.embed_dropout = nn.Dropout(config.dropout)
        self._build_stack()
        self.norm = nn.Identity()
        self.flatten = nn.Linear(self.n_patches * d, d)
        self.gate_temporal, self.gate_variate = Gate(d), Gate(d)
        self.variate = VariateEncoder(config)
        self.head = nn.Linear(d, horizon)

    def global_embedding(self, x: torch.Tensor) -> torch.Tensor:
        """``g [B, C, d]`` of normalised inputs ``x [B, L, C]``."""
        return self.embed_dropout(self.global_embed(x.transpose(1, 2)))

    def temporal_embedding(self, x: torch.Tensor) -> torch.Tensor:
        """``t [B, C, d]`` of normalised inputs ``x [B, L, C]``: patches, the temporal blocks, the flatten head."""
        B, L, C = x.shape
        patches = cut_patches(x.transpose(1, 2).reshape(B * C, L), self.head_config.patch_len)  # (B C, N, P)
        tokens = self.embed_dropout(self.patch_embed(patches) + self.positions.to(x.dtype))    # (B C, N, d)
        h = self.encode(tokens)[0]                                                             # (B C, N, d)
        flat = h.transpose(1, 2).reshape(B, C, -1)                                             # (B, C, d N)
        return self.embed_dropout(self.flatten(flat))                                          # (B, C, d)

    def forward(self, inputs: torch.Tensor, labels: torch.Tensor | None = None) -> TaskOutput:
        steps, variates = inputs.shape[1:]
        if steps != self.lookback or variates != self.n_in:
            raise ValueError(f"this forecaster reads {self.lookback} steps of {self.n_in} variates; got {steps} "
                             f"steps of {variates}")
        x, mean, std = instance_norm(inputs)
        e = self.gate_temporal(self.global_embedding(x), self.temporal_embedding(x))          # (B, C, d)
        h = self.gate_variate(e, self.variate.encode(e)[0])                                   # (B, C, d)
        y = self.head(h).transpose(1, 2).to(std.dtype) * std + mean                           # (B, H, C)
        y = y[..., self.out_index]                                                            # (B, H, n_out)
        loss = None if labels is None else F.mse_loss(y, labels.to(y.dtype))
        aux = self.collect_aux()
        return TaskOutput(y, loss, torch.stack(list(aux.values())).sum() if aux else None, aux)

    def channel_mixers(self) -> list[tuple[int, nn.Module]]:
        """(layer, channel mixer) of both encoders: the temporal layers 0..n_layers-1, then the variate layers."""
        n = len(self.blocks)
        return super().channel_mixers() + [(n + i, ch) for i, ch in self.variate.channel_mixers()]

    def aux_losses(self) -> dict[str, torch.Tensor]:
        out = super().aux_losses()
        for name, value in self.variate.aux_losses().items():
            out[name] = out[name] + value if name in out else value
        return out

    def state_size(self, seq_len: int) -> int:
        """Floats held by the temporal mixers over the patches of one variate's ``seq_len`` steps plus those of the
        variate encoder over the ``n_in`` variate tokens."""
        return super().state_size(n_patches(seq_len, self.head_config.patch_len)) + self.variate.state_size(self.n_in)


def build_forecaster(model: ModelConfig, head: ForecasterConfig, lookback: int, horizon: int, n_in: int,
                     out_index: list[int]) -> Forecaster | Gateformer:
    """The forecaster ``head.architecture`` names: a ``Forecaster`` (``"encoder"``) or a ``Gateformer``."""
    cls: Any = Gateformer if head.architecture == "gateformer" else Forecaster
    return cls(model, head, lookback, horizon, n_in, out_index)
