"""Linearization (Liger: Lan et al. 2025, "Liger: Linearizing Large Language Models to Gated Recurrent Structures",
arXiv 2503.01496): every softmax-attention layer of a trained model becomes a layer with a constant-size decoding
state that reuses the attention's q/k/v/o weights, adding no parameter; every other weight is kept as it is.

The targets, all with exactly the parameters of ``attn`` (so the trained weights load unchanged):

- ``liger``: Liger attention (``liger``): 0.5 * sliding-window attention (window 64) + 0.5 * the gated recurrence,
  whose forget gate is pooled from the key projection (``logsigmoid(x W_K) / 16``), softmax feature maps on q
  and k, no RoPE in the recurrence; as the paper's code (``liger/models/liger_gla``).
- ``gla``: the gated recurrence alone (``liger`` with ``mix=0``): Liger's linear branch, gate pooled from the key,
  without the window, the paper's ablation of Liger attention to its gated recurrent branch. (gatelab's ``gla``
  mixer has its own low-rank gate, output gate and norm, new weights the pretrained model has not got.)
- ``swa``: sliding-window attention alone (``swa``, window 64; ``liger`` with ``mix=1``).
- ``linear_attn``: ungated linear attention with the same softmax feature map, normalised (``liger`` with
  ``mix=0, recurrence='linear'``; Katharopoulos et al. 2020, arXiv 2006.16236).

Grouped-query attention maps as the paper's code maps Llama-3-8B (32 query heads, 8 kv heads): the recurrent
branch repeats each kv head's key, value and gate over its query heads (``repeat_kv``); the weights stay those of
the kv heads.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import torch

from ..config import ConfigError
from ..models.lm import DecoderLM

SOURCE = "attn"
DEFAULT_WINDOW = 64
TARGETS: dict[str, tuple[str, dict[str, Any]]] = {
    "liger": ("liger", {"mix": 0.5}),
    "gla": ("liger", {"mix": 0.0}),
    "swa": ("swa", {}),
    "linear_attn": ("liger", {"mix": 0.0, "recurrence": "linear"}),
}
# attention options whose layer has no key projection for the recurrent branch to read
UNMAPPABLE = ("qk_merged",)


def target_options(config, to: str, window: int = DEFAULT_WINDOW) -> tuple[str, dict[str, Any]]:
    """The mixer key and options that replace the ``attn`` layers of a model with ``config`` (a ModelConfig) for
    target ``to``: the attention's own options (heads, kv heads, head dim, RoPE, QK-norm) plus the target's."""
    if to not in TARGETS:
        raise ConfigError(f"unknown linearization target {to!r}; choose one of {', '.join(TARGETS)}")
    key, extra = TARGETS[to]
    attn = dict(config.mixer_options.get(SOURCE, {}))
    bad = [name for name in UNMAPPABLE if attn.get(name) and key == "liger"]
    if bad:
        raise ConfigError(f"linearize --to {to}: the attention layers use {', '.join(f'{b}=true' for b in bad)} (no "
                          "key projection), and the recurrent branch builds its gate and keys from one; only --to swa "
                          "maps such layers")
    options = {**attn, **extra}
    if key == "swa" or extra["mix"] > 0:
        options["window"] = window
    return key, options


def linearize(model: DecoderLM, to: str, window: int = DEFAULT_WINDOW) -> DecoderLM:
    """A copy of ``model`` whose every ``attn`` layer is the target ``to`` (``liger``, ``gla``, ``swa`` or
    ``linear_attn``; see the module docstring), built from the same q/k/v/o weights; every other weight (embedding,
    norms, channel mixers, the other layers of a hybrid, the head) is copied bit for bit. ``window``: the sliding
    window of ``liger`` and ``swa`` (the paper's 64). The copy has the dtype, device and train/eval mode of
    ``model``. A model without ``attn`` layers, or one that already has layers of the target's mixer, is refused."""
    cfg = model.config
    schedule = cfg.schedule()
    if SOURCE not in schedule:
        raise ConfigError(f"linearize replaces softmax attention (mixer '{SOURCE}'); this model's layers are "
                          f"{', '.join(sorted(set(schedule)))}")
    key, options = target_options(cfg, to, window)
    if key in schedule:
        raise ConfigError(f"linearize --to {to}: the model already has '{key}' layers, whose options the linearized "
                          f"'{SOURCE}' layers would share; linearize a model without '{key}' layers")
    new_schedule = [key if k == SOURCE else k for k in schedule]
    mixer = key if len(set(new_schedule)) == 1 else ",".join(new_schedule)
    new_cfg = dataclasses.replace(cfg, mixer=mixer, mixer_options={**cfg.mixer_options, key: options})
    weight = next(model.parameters())
    with torch.device(weight.device):
        student = DecoderLM(new_cfg).to(weight.dtype)
    student.load_state_dict(model.state_dict())     # strict: the target has exactly the parameters of attn
    return student.train(model.training)
