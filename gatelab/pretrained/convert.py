"""Llama-family transformers checkpoints as gatelab ``DecoderLM``s with the same logits.

The architectures map onto gatelab's pre-norm block as follows (Touvron et al. 2023, "LLaMA", arXiv 2302.13971):
``input_layernorm`` -> ``mixer_norm`` (RMSNorm, ``rms_norm_eps``), ``self_attn`` -> the ``attn`` mixer (q/k/v/o_proj
as they are, GQA through ``n_kv_heads``, ``head_dim``, RoPE base and scaling; Qwen2's q/k/v biases as
``bias="qkv"``, Llama's and Qwen3's ``attention_bias`` as ``bias="all"``, Qwen3's q/k RMSNorm as ``qk_norm``),
``post_attention_layernorm`` -> ``channel_norm``, the MLP -> the ``swiglu`` channel mixer (``gate_proj`` -> ``w1``,
``up_proj`` -> ``w3``, ``down_proj`` -> ``w2``, ``d_ff = intermediate_size``), ``norm`` -> ``norm``, tied or untied
``lm_head`` -> ``head``. Layers with a sliding window (Mistral's ``sliding_window``; Qwen2's and Qwen3's
``sliding_attention`` layers) become ``swa`` with that window (transformers' mask keeps the keys ``j > i - window``,
as ``swa`` does). Both sides rotate halves (transformers' ``rotate_half``, gatelab's ``RotaryEmbedding``), so q and
k weights are copied without permutation.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch

from ..config import ConfigError
from ..models.lm import DecoderLM, ModelConfig
from .rope import rope_from_hf

SUPPORTED = ("LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM")
ACTIVATIONS = ("silu", "swish")   # transformers' names of SiLU, the gate of SwiGLU


def _check(condition: bool, where: str, message: str) -> None:
    if not condition:
        raise ConfigError(f"{where}: {message}; convert maps only what gatelab computes exactly")


def _bias(attn: Any, where: str) -> str:
    """``none``, ``qkv`` or ``all``: which of the attention projections carry biases."""
    qkv = [getattr(attn, n).bias is not None for n in ("q_proj", "k_proj", "v_proj")]
    out = attn.o_proj.bias is not None
    _check(len(set(qkv)) == 1 and (qkv[0] or not out), where,
           f"biases on {[n for n, b in zip(('q', 'k', 'v'), qkv, strict=True) if b] + (['o'] if out else [])} "
           "projections; gatelab's attention has none, q/k/v, or all four")
    return "all" if out else "qkv" if qkv[0] else "none"


def _windows(model: Any) -> list[int | None]:
    """The sliding window of each layer (None: full causal attention), as the model's attention masks apply it."""
    config, n = model.config, model.config.num_hidden_layers
    window = getattr(config, "sliding_window", None) if type(model).__name__ != "LlamaForCausalLM" else None
    if window is None or window >= config.max_position_embeddings:   # a window the length never reaches
        return [None] * n
    if type(model).__name__ == "MistralForCausalLM":
        return [window] * n
    types = list(getattr(config, "layer_types", None) or ["full_attention"] * n)
    unknown = sorted(set(types) - {"full_attention", "sliding_attention"})
    _check(not unknown, type(model).__name__, f"layer types {unknown} are not supported (full_attention and "
           "sliding_attention are)")
    return [window if t == "sliding_attention" else None for t in types]


def model_config(model: Any) -> ModelConfig:
    """The gatelab ``ModelConfig`` of a supported transformers causal LM (a ConfigError names what does not map)."""
    where = type(model).__name__
    if where not in SUPPORTED:
        raise ConfigError(f"convert: {where} is not supported; supported architectures: {', '.join(SUPPORTED)}")
    c, attn = model.config, model.model.layers[0].self_attn
    _check(getattr(c, "hidden_act", "silu") in ACTIVATIONS, where, f"hidden_act {c.hidden_act!r} is not SiLU")
    _check(not getattr(c, "mlp_bias", False), where, "the MLP has biases (mlp_bias)")
    head_dim = attn.head_dim
    _check(math.isclose(attn.scaling, head_dim ** -0.5), where, f"attention scale {attn.scaling} is not "
           f"head_dim ** -0.5")
    base, scaling = rope_from_hf(model, head_dim)
    options: dict[str, Any] = {"n_kv_heads": c.num_key_value_heads, "head_dim": head_dim, "rope_base": base,
                               "bias": _bias(attn, where)}
    if scaling is not None:
        options["rope_scaling"] = dataclasses.asdict(scaling)
    if getattr(attn, "q_norm", None) is not None:
        options.update(qk_norm=True, qk_norm_eps=attn.q_norm.variance_epsilon)
    windows = _windows(model)
    mixers = {"attn": options}
    for window in {w for w in windows if w is not None}:   # one value: the config's sliding_window
        mixers["swa"] = {**options, "window": window}
    schedule = ["attn" if w is None else "swa" for w in windows]
    tied = model.get_output_embeddings().weight is model.get_input_embeddings().weight
    return ModelConfig(vocab_size=model.get_input_embeddings().weight.shape[0], d_model=c.hidden_size,
                       n_layers=c.num_hidden_layers, n_heads=c.num_attention_heads,
                       mixer=schedule[0] if len(set(schedule)) == 1 else ",".join(schedule),
                       mixer_options=mixers, channel="swiglu", d_ff=c.intermediate_size, short_conv=0,
                       norm="rmsnorm", norm_eps=c.rms_norm_eps, tie_embeddings=tied,
                       max_seq_len=c.max_position_embeddings)


def _weights(model: Any) -> dict[str, torch.Tensor]:
    """The transformers model's tensors under the gatelab ``DecoderLM`` names."""
    base = model.model
    out = {"embed.weight": base.embed_tokens.weight, "norm.weight": base.norm.weight,
           "head.weight": model.get_output_embeddings().weight}
    for i, layer in enumerate(base.layers):
        block, attn, mlp = f"blocks.{i}.", layer.self_attn, layer.mlp
        out[block + "mixer_norm.weight"] = layer.input_layernorm.weight
        out[block + "channel_norm.weight"] = layer.post_attention_layernorm.weight
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            for kind, tensor in getattr(attn, name).named_parameters():
                out[f"{block}mixer.{name}.{kind}"] = tensor
        for name in ("q_norm", "k_norm"):
            if getattr(attn, name, None) is not None:
                out[f"{block}mixer.{name}.weight"] = getattr(attn, name).weight
        for theirs, ours in (("gate_proj", "w1"), ("up_proj", "w3"), ("down_proj", "w2")):
            out[f"{block}channel.{ours}.weight"] = getattr(mlp, theirs).weight
    return out


@torch.no_grad()
def to_gatelab(model: Any) -> DecoderLM:
    """A gatelab ``DecoderLM`` (eval mode, in the model's dtype) with the weights of ``model``, a
    ``LlamaForCausalLM``, ``MistralForCausalLM``, ``Qwen2ForCausalLM`` or ``Qwen3ForCausalLM``, whose logits equal
    the model's (to the dtype's rounding). Anything that does not map exactly is a ConfigError that names it."""
    config = model_config(model)
    dtype = model.get_input_embeddings().weight.dtype
    lm = DecoderLM(config).to(dtype)
    lm.load_state_dict({k: v.detach().to("cpu") for k, v in _weights(model).items()}, strict=True)
    return lm.eval()


@torch.no_grad()
def logits_gap(model: Any, lm: DecoderLM, input_ids: torch.Tensor) -> tuple[float, float]:
    """``(max |difference|, relative RMS difference)`` of the logits of the transformers ``model`` and the
    converted ``lm`` on ``input_ids [B, T]``."""
    theirs = model(input_ids=input_ids).logits.double()                                  # (B, T, vocab)
    ours = lm(input_ids).logits.double()                                                  # (B, T, vocab)
    diff = ours - theirs
    return diff.abs().max().item(), (diff.square().mean().sqrt() / theirs.square().mean().sqrt()).item()
