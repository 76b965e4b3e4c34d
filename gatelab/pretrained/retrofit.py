"""Retrofit Qwen's G1 output gate onto a trained model: every ``attn`` layer becomes a ``gated_attn`` layer with the
same q/k/v/o weights and options, initialised so the model computes exactly what it did.

"Gated Attention for Large Language Models" (Qiu et al. 2025, arXiv 2505.06708) trains its gated models from
scratch: the G1 gate ``o_proj(SDPA(q, k, v) * sigmoid(x W_g))`` is part of a widened ``q_proj`` with the ordinary
random initialisation, so its scores start near 0.5 and the model learns around them. A retrofit must instead
leave the trained model unchanged at step 0. Here the gate's weights start at zero, so every score is exactly
``sigmoid(0) = 0.5``, and ``o_proj``'s weights are doubled: ``(2 W_o)(0.5 y)`` has the same products as
``W_o y`` (scaling by 0.5 and 2 is exact in binary floating point, short of underflow or overflow), so the logits
are bit-identical. The gate then starts at the paper's mean initial score, with gradients
``dL/ds * 0.25 * x`` that are not small (a large gate bias, sigmoid near 1, would saturate them and is not
exact). The price: AdamW's steps on the doubled ``o_proj`` are half as large relative to its weights, and its
weight decay acts on the doubled values, so the fair control is the same fine-tune of the ungated model
(``gatelab.pretrained.retrofit_run``), not the untouched model.

Only the layers whose mixer key is ``attn`` are gated; every other mixer of a hybrid (``gla``, ``swa``,
``liger``, ...) is left as it is, weights included. A model without an ``attn`` layer, one that already has
``gated_attn`` layers (whose options the new layers would share), and attention without an output projection
(``no_output``, which has no ``o_proj`` to absorb the 0.5) are refused.
"""
from __future__ import annotations

import copy
from typing import Literal

import torch

from ..config import ConfigError
from ..models.config import parse_schedule
from ..models.lm import DecoderLM, ModelConfig

SOURCE, GATED = "attn", "gated_attn"
GATE_SCORE = 0.5        # sigmoid(0): the score of a gate whose weights are zero
Granularity = Literal["elementwise", "headwise"]


def gated_config(config: ModelConfig, granularity: Granularity = "elementwise") -> ModelConfig:
    """``config`` with every ``attn`` layer made a G1 ``gated_attn`` layer of ``granularity`` and the attention
    options the ``attn`` layers had (QK-norm as they had it: ``gated_attn`` turns it on by default)."""
    if granularity not in ("elementwise", "headwise"):
        raise ConfigError(f"granularity {granularity!r}: choose elementwise or headwise")
    keys = parse_schedule(config.mixer)
    if SOURCE not in config.schedule():
        raise ConfigError(f"the model has no {SOURCE} layer to gate (its mixer schedule is {config.mixer!r}); "
                          f"retrofit-gate adds the G1 gate to softmax attention ({SOURCE}) layers")
    if GATED in keys:
        raise ConfigError(f"the model already has {GATED} layers (mixer schedule {config.mixer!r}); the retrofitted "
                          f"layers would share their options, so retrofit a model whose attention is all {SOURCE}")
    options = dict(config.mixer_options.get(SOURCE, {}))
    if options.get("no_output"):
        raise ConfigError(f"{SOURCE} with no_output=true has no o_proj to take the factor 2 that keeps the model "
                          "unchanged at step 0; retrofit-gate needs the output projection")
    out = copy.deepcopy(config)
    out.mixer = ",".join(GATED if key == SOURCE else key for key in keys)
    out.mixer_options.pop(SOURCE, None)
    out.mixer_options[GATED] = {**options, "qk_norm": bool(options.get("qk_norm", False)),
                                "gate_position": "g1", "gate_granularity": granularity}
    return out


@torch.no_grad()
def retrofit_gate(model: DecoderLM, granularity: Granularity = "elementwise") -> DecoderLM:
    """A new DecoderLM: ``model`` (unchanged) with a G1 sigmoid gate of ``granularity`` in every ``attn`` layer,
    zero gate weights and doubled ``o_proj`` weights (its bias, if any, unchanged), so its logits equal
    ``model``'s bit for bit; every other tensor is a copy of ``model``'s. Same dtype and device; in eval mode. The
    gate adds ``d_model * H * D`` parameters per layer (elementwise) or ``d_model * H`` (headwise)."""
    config = gated_config(model.config, granularity)
    first = next(model.parameters())
    with torch.device(first.device):
        gated = DecoderLM(config).to(first.dtype)
    missing, unexpected = gated.load_state_dict(model.state_dict(), strict=False)
    layers = [i for i, key in enumerate(model.config.schedule()) if key == SOURCE]
    gates = {f"blocks.{i}.mixer.gate.{name}" for i in layers
             for name, _ in gated.blocks[i].mixer.gate.named_parameters()}
    if unexpected or set(missing) != gates:
        raise ConfigError(f"the gated model does not hold the source's tensors: missing "
                          f"{sorted(set(missing) - gates)}, unexpected {sorted(unexpected)}")
    for i in layers:
        mixer = gated.blocks[i].mixer
        for p in mixer.gate.parameters():
            p.zero_()
        for name, p in mixer.o_proj.named_parameters():
            if not name.endswith("bias"):    # (2 W)(0.5 y) + b = W y + b: a bias (attn's bias="all") stays
                p.mul_(1 / GATE_SCORE)
    return gated.eval()


__all__ = ["gated_config", "retrofit_gate"]
