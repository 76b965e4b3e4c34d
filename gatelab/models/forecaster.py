"""Forecaster: C variates over a lookback window in, a horizon of H steps out, from the same blocks as every
gatelab model (multivariate long-sequence forecasting, as Informer (Zhou et al. 2021, arXiv 2012.07436) poses it)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ConfigError, check_ranges
from ..layers.distil import Distilling
from .config import ModelConfig
from .stack import BlockStack, TaskOutput


@dataclass(kw_only=True)
class ForecasterConfig:
    """How a forecaster reads and writes its variates. ``channel_independent``: every input variate is its own
    sequence of scalars through one shared backbone (the channel-independent protocol of PatchTST and DLinear);
    otherwise each time step's C values are one token (Informer's channel mixing). The head maps the flattened
    last hidden states ``[T', d_model]`` of a sequence to the horizon (PatchTST's flatten head). ``distil``:
    Informer's self-attention distilling between blocks (``gatelab.layers.distil``), halving the length after
    every block but the last. ``architecture``: ``"encoder"`` (this class) or ``"gateformer"``
    (``gatelab.models.gateformer``: patches of ``patch_len`` steps per variate, then gated variate-wise attention);
    ``build_forecaster`` builds either."""

    channel_independent: bool = True
    distil: bool = False
    architecture: Literal["encoder", "gateformer"] = "encoder"
    patch_len: int = 8

    RANGES: ClassVar[dict[str, str]] = {"patch_len": "[1, inf)"}

    def check(self) -> None:
        if self.architecture == "gateformer" and (self.distil or not self.channel_independent):
            raise ConfigError("forecaster.distil=true and forecaster.channel_independent=false apply to "
                              "forecaster.architecture='encoder'; Gateformer embeds each variate on its own and "
                              "mixes variates with its variate-wise attention: leave both at their defaults")


class Forecaster(BlockStack):
    """Forecast ``labels [B, horizon, n_out]`` from ``inputs [B, lookback, n_in]`` (standardised values).

    Each input token is ``Linear(1, d)`` of one value (channel-independent) or ``Linear(n_in, d)`` of one time
    step; the backbone is a ``BlockStack`` of ``model`` (causal or bidirectional); the head is
    ``Linear(T' d, horizon)`` per variate (channel-independent; the outputs are the variates ``out_index``) or
    ``Linear(T' d, horizon n_out)`` (mixed), with T' the length after distilling. ``forward(inputs, labels=None)``
    returns forecasts ``[B, horizon, n_out]`` and the mean squared error. Parameters: embedding ``(1 or n_in) d + d``,
    blocks, final norm, head ``T' d (horizon or horizon n_out) + (horizon or horizon n_out)``.
    """

    def __init__(self, config: ModelConfig, head: ForecasterConfig, lookback: int, horizon: int, n_in: int,
                 out_index: list[int]):
        super().__init__()
        check_ranges(head, "forecaster")
        self._check_config(config)
        self.head_config, self.lookback, self.horizon = head, lookback, horizon
        self.register_buffer("out_index", torch.tensor(out_index, dtype=torch.long), persistent=False)
        d = config.d_model
        self.embed = nn.Linear(1 if head.channel_independent else n_in, d)
        self.embed_dropout = nn.Dropout(config.dropout)
        self._build_stack()
        if head.distil and any(b.mixer_residual.delayed or (b.channel is not None and b.channel.uses_carry)
                               for b in self.blocks):
            raise ConfigError(f"forecaster.distil=true halves the sequence between blocks, so nothing can pass from "
                              f"one block to the next beside the stream: model.residual={config.residual!r} (a "
                              f"delayed residual) and model.channel={config.channel!r} (a pre-gated router) need "
                              "forecaster.distil=false")
        if head.distil and config.loop > 1:
            raise ConfigError(f"forecaster.distil=true halves the sequence after each layer, once; model.loop="
                              f"{config.loop} would run the layers again on the shorter sequence: set model.loop=1 or "
                              "forecaster.distil=false")
        self.distil = nn.ModuleList()
        length = lookback
        if head.distil:
            for _ in range(config.n_layers - 1):
                self.distil.append(Distilling(d))
                length = Distilling.out_length(length)
        outputs = horizon if head.channel_independent else horizon * len(out_index)
        self.head = nn.Linear(length * d, outputs)

    def encode_series(self, x: torch.Tensor) -> torch.Tensor:
        """The blocks (with distilling between them) over embedded tokens ``[N, T, d]``: ``[N, T', d]``."""
        if not self.distil:
            return self.encode(x)[0]
        bounds = self.layer_lower_bounds()
        for i, block in enumerate(self.blocks):
            x, _ = block(x, None, lower_bound=bounds[i], carry={})
            if i < len(self.distil):
                x = self.distil[i](x)
        return self.norm(x)

    def forward(self, inputs: torch.Tensor, labels: torch.Tensor | None = None) -> TaskOutput:
        B, steps, C = inputs.shape
        if steps != self.lookback:
            raise ValueError(f"this forecaster reads {self.lookback} steps; got {steps}")
        if self.head_config.channel_independent:
            tokens = inputs.transpose(1, 2).reshape(B * C, steps, 1)                          # (B C, L, 1)
            h = self.encode_series(self.embed_dropout(self.embed(tokens)))                # (B C, T', d)
            y = self.head(h.flatten(1)).view(B, C, self.horizon).transpose(1, 2)          # (B, H, C)
            y = y[..., self.out_index]                                                    # (B, H, n_out)
        else:
            h = self.encode_series(self.embed_dropout(self.embed(inputs)))                # (B, T', d)
            y = self.head(h.flatten(1)).view(B, self.horizon, -1)                         # (B, H, n_out)
        wide = torch.promote_types(y.dtype, torch.float32)                                # bf16 -> float32
        loss = None if labels is None else F.mse_loss(y.to(wide), labels.to(wide))
        aux = self.collect_aux()
        return TaskOutput(y, loss, torch.stack(list(aux.values())).sum() if aux else None, aux)
