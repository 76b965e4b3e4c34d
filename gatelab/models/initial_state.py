"""Learned initial states: initial-state tuning (Lemerle, Guichoux, Roebel & Obin 2024, "Lina-Speech: Gated
Linear Attention is a Fast and Parameter-Efficient Learner for text-to-speech synthesis", arXiv 2410.23320).

A recurrent layer's memory before the first token is zeros; here it is a parameter instead, one per application
of a block whose mixer keeps a recurrent memory, shaped like that memory for one sequence (``[1, H, K, V]`` for
GLA, ``[1, d, 1, 1]`` for HGRN, ``[1, d_inner, d_state]`` for Mamba) and expanded over the batch whenever a forward
starts without states. Tuning only these (everything else frozen) adapts a trained model with as many parameters
as its decoding state holds. The paper's code (lina-speech, ``get_init_state_tuning_params``) learns one
``[1, H, K, V]`` state per GLA layer, initialised at ``0.02 * randn`` and repeated over the batch; here it starts
at zeros, the memory every mixer starts from, so the model is unchanged until it trains.

Which mixers have one: those whose state is a dataclass with a recurrent memory ``h`` (``RecurrentState``: gla,
hgrn, hgrn2, gdn, deltanet, mamba, mamba2, retnet, linear_attn, based; liger's gated branch, beside its window)
and is one tensor. Attention's KV cache, convolution tails and the other mixers' states (atlas's several memories,
lmu, flowformer, fsmn, hornet, mossformer, ...) have no learned form; their layers start as before.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..layers.base import TokenMixer

PREFIX = "initial_states"     # the parameters' names in a model's state dict: initial_states.<application>


def _has_memory(mixer: TokenMixer) -> bool:
    """Whether ``mixer``'s state holds a recurrent memory ``h`` (a dataclass state with that field)."""
    try:
        state = mixer.init_state(1)
    except (NotImplementedError, RuntimeError, TypeError, ValueError):
        return False
    return dataclasses.is_dataclass(state) and "h" in {f.name for f in dataclasses.fields(state)}


def memory_shape(build: Callable[[], TokenMixer], d_model: int) -> tuple[int, ...] | None:
    """The shape ``[1, ...]`` of the recurrent memory of the mixer ``build()`` makes, read from a one-token forward
    of a CPU copy built for the purpose (a model may be built on the meta device, where a forward cannot run; the
    random initialisation of that copy leaves the caller's random state as it was), or None if it has none."""
    with torch.random.fork_rng(devices=[]), torch.device("cpu"), torch.no_grad():
        mixer = build()
        if not _has_memory(mixer):
            return None
        _, state = mixer(torch.zeros(1, 1, d_model))
    h = state.h
    return tuple(h.shape) if isinstance(h, torch.Tensor) and h.is_floating_point() else None


def build_initial_states(shapes: list[tuple[int, ...] | None]) -> nn.ParameterDict:
    """Zero parameters ``initial_states.<i>`` for each application ``i`` whose memory has a shape."""
    return nn.ParameterDict({str(i): nn.Parameter(torch.zeros(shape)) for i, shape in enumerate(shapes) if shape})


def expand_initial_states(learned: nn.ParameterDict, blocks: list[nn.Module], batch_size: int) -> list[Any]:
    """Each application's block state before the first token: the block's own initial state with the mixer's
    memory replaced by the learned one expanded over ``batch_size`` (a view: gradients flow back to the one row),
    or None (the block's default) where nothing is learned."""
    out: list[Any] = []
    for i, block in enumerate(blocks):
        if str(i) not in learned:
            out.append(None)
            continue
        h = learned[str(i)]
        conv, state = block.init_state(batch_size)
        out.append((conv, dataclasses.replace(state, h=h.expand(batch_size, *h.shape[1:]))))
    return out
