"""Where the analysis hooks a Hugging Face causal LM (Llama, Qwen2, Mistral, GPT-2 and models built like them),
found in its module tree; the model's code is never edited.

- Decoder layers: the first ``nn.ModuleList`` (outermost first) with ``config.num_hidden_layers`` entries
  (``model.layers`` in Llama, Qwen2 and Mistral, ``transformer.h`` in GPT-2). Their outputs are the residual
  stream (M-Act, infinity norm, kurtosis).
- Attention: in each layer, the outermost module whose class name ends in ``Attention`` (``self_attn``, ``attn``;
  cross-attention excluded). Run with the eager implementation (``attn_implementation="eager"``, which
  ``eager_attention`` switches to for the duration of a measurement), every such module returns
  ``(attn_output, attn_weights)``, the weights being the softmax probabilities ``[B, H, Tq, Tk]`` after the causal
  mask: a forward hook reads element 1 of that output. This is the module and the element that transformers itself
  records for ``output_attentions=True``, one layer at a time instead of all layers held at once; the SDPA and
  flash implementations return no weights, which ``probabilities`` reports as an error.
- Feed-forward: the layer's child named ``mlp``, ``feed_forward``, ``block_sparse_moe`` or ``ffn``; attention output
  projection: the attention module's child named ``o_proj``, ``out_proj``, ``c_proj``, ``dense`` or ``wo``.
- Gates: none. The gate scores of ``gatelab analyze`` come from gatelab's gate probes; a Hugging Face model has
  no such probes (a SwiGLU ``gate_proj`` is an unbounded linear map, not a gate score).
- Linear layers for quantization: ``nn.Linear`` and transformers' ``Conv1D`` (GPT-2); the output head (the module
  of ``get_output_embeddings``, often tied to the input embedding) keeps float weights.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from .measure import ModuleNames

FFN_NAMES = ("mlp", "feed_forward", "block_sparse_moe", "ffn")
OUT_PROJ_NAMES = ("o_proj", "out_proj", "c_proj", "dense", "wo")


def decoder_layers(model: nn.Module) -> str:
    """The name of the model's stack of decoder layers (module docstring)."""
    n = model.config.num_hidden_layers
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == n:
            return name
    raise ValueError(f"{type(model).__name__}: no list of {n} decoder layers (config.num_hidden_layers) among its "
                     "modules; analyze --hf reads Llama-, Qwen2-, Mistral- and GPT-2-style causal LMs")


def attention_module(layer: nn.Module) -> str | None:
    """The name (relative to ``layer``) of its self-attention module, or None when it has none."""
    for name, module in layer.named_modules():
        if name and type(module).__name__.endswith("Attention") and "cross" not in name.lower():
            return name
    return None


def _child(module: nn.Module, names: tuple[str, ...]) -> str | None:
    children = dict(module.named_children())
    return next((n for n in names if n in children), None)


def probabilities(output: Any) -> torch.Tensor:
    """The attention probabilities ``[B, H, Tq, Tk]`` in an attention module's output ``(attn_output, weights)``."""
    weights = output[1] if isinstance(output, (tuple, list)) and len(output) > 1 else None
    if not isinstance(weights, torch.Tensor) or weights.dim() != 4:
        raise ValueError("the attention modules return no attention probabilities: run the model with "
                         "attn_implementation='eager' (model.set_attn_implementation('eager'))")
    return weights


def hf_module_names(model: nn.Module) -> ModuleNames:
    """Where ``measure`` hooks a Hugging Face causal LM (module docstring)."""
    stack = decoder_layers(model)
    names = ModuleNames(probabilities=probabilities)
    for i, layer in enumerate(model.get_submodule(stack)):
        prefix = f"{stack}.{i}"
        names.blocks.append(prefix)
        ffn = _child(layer, FFN_NAMES)
        if ffn:
            names.ffn.append(f"{prefix}.{ffn}")
        attn = attention_module(layer)
        if attn:
            names.attention.append(f"{prefix}.{attn}")
            proj = _child(layer.get_submodule(attn), OUT_PROJ_NAMES)
            if proj:
                names.out_proj.append(f"{prefix}.{attn}.{proj}")
    return names


def linear_types() -> tuple[type[nn.Module], ...]:
    from transformers.pytorch_utils import Conv1D

    return nn.Linear, Conv1D


def head_name(model: nn.Module) -> str:
    """The name of the output head (``get_output_embeddings``), which quantization leaves in float."""
    head = model.get_output_embeddings()
    return next(name for name, module in model.named_modules() if module is head)


@contextlib.contextmanager
def eager_attention(model: nn.Module) -> Iterator[nn.Module]:
    """While active, ``model`` runs the eager attention implementation (which returns the probabilities); the
    implementation it had is restored on exit."""
    previous = model.config._attn_implementation
    if previous != "eager":
        model.set_attn_implementation("eager")
    try:
        yield model
    finally:
        if previous != "eager":
            model.set_attn_implementation(previous)
