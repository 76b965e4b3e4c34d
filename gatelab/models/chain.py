"""Chain-of-Model language models (Song et al. 2025, "Chain-of-Model Learning for Language Model", arXiv
2505.11820): the config rules of ``model.chains`` and the nested sub-model of the first k chains.

With ``model.chains = n > 1`` every part of a DecoderLM keeps chain i depending on chains <= i: the embedding
(chain i is columns ``[i d/n, (i+1) d/n)``; unchanged, as in the paper §3.2.4), chain-wise norms (``ChainNorm``,
§3.2.3), the token mixer (Chain-of-Model attention, §3.2.1), the channel mixer (``chain``, §3.2.2) and the LM head
(its first ``k d/n`` columns read the first k chains, the paper's ``W^k``, §3.4). So the first k chains of every
hidden state are those of a DecoderLM of width ``k d/n`` holding the leading slices of the weights, which
``chain_submodel`` builds. Not offered: the paper's multi-chain loss (a cross-entropy per k, §3.4; its
pre-training uses the plain loss of the full model, as gatelab's loop does), unequal chain widths, and CoLM-Air's
shared keys and values.
"""
from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING

import torch

from ..config import ConfigError
from ..registry import CHANNEL_MIXERS, MIXERS, Registry

if TYPE_CHECKING:
    from .lm import DecoderLM, ModelConfig


def chain_keys(registry: Registry) -> list[str]:
    """The keys of ``registry`` whose layers take ``n_chains`` (their Config has that field)."""
    def takes_chains(cls) -> bool:
        config = getattr(cls, "Config", None)
        return config is not None and any(f.name == "n_chains" for f in dataclasses.fields(config))
    return [key for key in registry.names() if takes_chains(registry.get(key))]


CHAIN_RESIDUALS = ("add", "ladder")   # the residual connections that keep chain i reading chains <= i only


def _channel_keys(spec: str) -> list[str]:
    """The channel keys named by ``model.channel``: one key, a list ``a,b`` or a ratio ``a:b=3:1``."""
    return [k.strip() for k in re.split("[,:]", spec.partition("=")[0]) if k.strip()]


def check_chains(config: ModelConfig) -> None:
    """Raise ConfigError unless ``config.chains`` can build a Chain-of-Model: with chains > 1 every token mixer and
    channel mixer of the model must take chains, mixer_options must not set n_chains, and d_model, each attention
    mixer's n_heads and n_kv_heads, and d_ff (when set) must be divisible by chains."""
    n = config.chains
    if n == 1:
        return
    mixers, channels = sorted(set(config.schedule())), sorted(set(_channel_keys(config.channel)) - {"none"})
    for field, keys, registry in (("mixer", mixers, MIXERS), ("channel", channels, CHANNEL_MIXERS)):
        supported = chain_keys(registry)
        for key in keys:
            registry.get(key)  # an unknown key: the registry's error, which lists the keys
        refused = [k for k in keys if k not in supported]
        if refused:
            raise ConfigError(f"model.chains={n}: model.{field} {', '.join(refused)} does not split into chains; "
                              f"with chains > 1 use {' or '.join(supported)}"
                              + (" (or none)" if field == "channel" else ""))
    if config.residual not in CHAIN_RESIDUALS:
        raise ConfigError(f"model.chains={n}: model.residual {config.residual} mixes the chains (its gates are full "
                          f"d_model x d_model projections); with chains > 1 use {' or '.join(CHAIN_RESIDUALS)}")
    if config.d_model % n:
        raise ConfigError(f"model.d_model={config.d_model} is not divisible by model.chains={n}")
    if channels and config.d_ff % n:
        raise ConfigError(f"model.d_ff={config.d_ff} is not divisible by model.chains={n}; choose a multiple of {n} "
                          "(or 0 for the default width)")
    for key in mixers:
        options = config.mixer_options.get(key, {})
        if "n_chains" in options:
            raise ConfigError(f"model.mixer_options.{key}.n_chains: set model.chains instead (it sets every layer)")
        for name in ("n_heads", "n_kv_heads"):
            value = options.get(name, config.n_heads if name == "n_heads" else None)
            if value is not None and value % n:
                where = f"model.mixer_options.{key}.{name}" if name in options else f"model.{name}"
                raise ConfigError(f"{where}={value} is not divisible by model.chains={n}: each chain takes an "
                                  "equal share of the heads")


def chain_submodel(model: DecoderLM, k: int) -> DecoderLM:
    """The DecoderLM of the first k chains of ``model`` (``1 <= k <= model.config.chains``): width ``k d/n``, k
    chains, ``k/n`` of the heads, kv heads and d_ff, and every weight the leading slice of the full model's (the
    first k blocks of each chain linear, the first ``k d/n`` columns of the embedding and head, tied or not). Its
    hidden states are the first ``k d/n`` channels of the full model's, its logits the full head applied to those
    channels; ``k = n`` is a copy of the model. On the full model's device and dtype, in its train/eval mode."""
    config, n = model.config, model.config.chains
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n:
        raise ConfigError(f"submodel k={k!r}: choose an integer number of chains from 1 to model.chains={n}")
    d_ff = next((b.channel.d_ff for b in model.blocks if b.channel is not None), 0)

    def scaled(options: dict) -> dict:
        return {name: value * k // n if name in ("n_heads", "n_kv_heads") else value
                for name, value in options.items()}
    sub_config = dataclasses.replace(
        config, d_model=config.d_model * k // n, n_heads=config.n_heads * k // n, d_ff=d_ff * k // n, chains=k,
        mixer_options={key: scaled(options) for key, options in config.mixer_options.items()})
    weight = next(model.parameters())
    with torch.device(weight.device):
        sub = type(model)(sub_config).to(weight.dtype)
    full = model.state_dict()
    with torch.no_grad():
        for name, tensor in sub.state_dict().items():
            # with k = 1 the attention projections are nn.Linear: their weight is the first chain linear block
            source = full[name] if name in full else full[name.removesuffix("weight") + "weights.0"]
            tensor.copy_(source[tuple(slice(0, size) for size in tensor.shape)])
    return sub.train(model.training)
