"""Length extrapolation: perplexity at multiples of the training length, with RoPE as trained and with NTK-aware
and YaRN scaling (``gatelab.layers.rope.RopeScaling``) applied to a copy of the model."""
from __future__ import annotations

import copy

import torch

from ..layers.rope import RopeScaling, RotaryEmbedding
from ..models.lm import DecoderLM
from ..tasks.text.windows import windows
from ..train.tasks import perplexity


def with_rope_scaling(model: DecoderLM, scaling: RopeScaling | None, max_len: int) -> DecoderLM:
    """A copy of ``model`` whose rotary embeddings use ``scaling`` and which accepts ``max_len`` tokens."""
    scaled = copy.deepcopy(model)
    scaled.config = copy.deepcopy(model.config)
    scaled.config.max_seq_len = max(max_len, model.config.max_seq_len)
    for module in scaled.modules():
        if isinstance(module, RotaryEmbedding):
            module.scaling = scaling
    return scaled.eval()


def has_rope(model: DecoderLM) -> bool:
    return any(isinstance(m, RotaryEmbedding) for m in model.modules())


@torch.no_grad()
def extrapolation(model: DecoderLM, stream: torch.Tensor, train_len: int, factors: tuple[int, ...] = (1, 2, 4, 8),
                  max_tokens: int = 16384, batch_tokens: int = 4096, bos: int | None = None
                  ) -> dict[str, dict[int, float]]:
    """``{method: {length: ppl}}`` on the same leading ``max_tokens`` of ``stream`` (0: all of it) cut into windows
    of each length (``train_len * factor``). Methods: ``as_trained``, and for models with RoPE ``ntk`` and ``yarn``
    (scale factor = length / train_len; at factor 1 both are the trained model, measured once)."""
    methods: dict[str, str | None] = {"as_trained": None}
    if has_rope(model):
        methods.update({"ntk": "ntk", "yarn": "yarn"})
    out: dict[str, dict[int, float]] = {m: {} for m in methods}
    for factor in factors:
        length = train_len * factor
        x, y = windows(stream, length, max_tokens, bos)
        batch = max(1, batch_tokens // length)
        if factor == 1:
            ppl = perplexity(model, x, y, batch)
            for name in methods:
                out[name][length] = ppl
            continue
        for name, kind in methods.items():
            scaling = RopeScaling(kind, float(factor), train_len) if kind else None
            out[name][length] = perplexity(with_rope_scaling(model, scaling, length), x, y, batch)
    return out
