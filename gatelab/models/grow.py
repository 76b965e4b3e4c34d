"""Progressive scaling of a model's Pattention layers (TokenFormer, Wang et al. 2024, arXiv 2410.23168, §3.5):
append parameter tokens to every Pattention and record the new shape in the model's config."""
from __future__ import annotations

import dataclasses

from ..config import ConfigError
from ..layers.channel.pattention import PattentionFFN
from ..layers.token.tokenformer import TokenFormer
from .stack import BlockStack


def grow_pattentions(model: BlockStack, qkv: int, proj: int, ffn: int) -> None:
    """Append ``qkv`` parameter tokens to the q, k and v Pattentions of every ``tokenformer`` mixer, ``proj`` to their
    output Pattention and ``ffn`` to every ``pattention`` channel mixer, in place (keys zero: the model's function is
    unchanged). ``model.config`` becomes a copy whose ``mixer_options`` / ``channel_options`` record the grown
    counts, so a saved model is rebuilt in its grown shape. Everything is checked before anything grows: a model
    without a Pattention layer, an amount for a kind of layer the model lacks, a negative amount or a growth that
    would change the function (theta='softmax') is a ConfigError."""
    c = model.config
    mixers = [(key, b.mixer) for key, b in zip(c.schedule(), model.blocks, strict=True)
              if isinstance(b.mixer, TokenFormer)]
    channels = [(key, b.channel) for key, b in zip(c.channel_schedule(), model.blocks, strict=True)
                if isinstance(b.channel, PattentionFFN)]
    if not mixers and not channels:
        raise ConfigError(f"grow: the model has no Pattention layer to grow (mixer {c.mixer!r}, channel "
                          f"{c.channel!r}); TokenFormer models use mixer 'tokenformer' and channel 'pattention'")
    for name, amount, layers, kind in (("qkv", qkv, mixers, "mixer 'tokenformer'"),
                                       ("proj", proj, mixers, "mixer 'tokenformer'"),
                                       ("ffn", ffn, channels, "channel 'pattention'")):
        if amount and not layers:
            raise ConfigError(f"grow: {name}={amount!r}, but the model has no {kind} to grow")
    for _, mixer in mixers:
        mixer.check_growth(qkv, proj)
    for _, channel in channels:
        channel.check_growth(ffn)
    mixer_options = {key: dict(opts) for key, opts in c.mixer_options.items()}
    channel_options = {key: dict(opts) for key, opts in c.channel_options.items()}
    for key, mixer in mixers:
        mixer_options[key] = {**mixer_options.get(key, {}), **mixer.grow(qkv, proj)}
    for key, channel in channels:
        channel_options[key] = {**channel_options.get(key, {}), **channel.grow(ffn)}
    model.config = dataclasses.replace(c, mixer_options=mixer_options, channel_options=channel_options)
