"""DecoderLM: embedding -> blocks (per-layer mixer schedule) -> final norm -> LM head; with stateful generation."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ConfigError
from .chain import chain_submodel
from .config import ModelConfig, parse_schedule, tile
from .grow import grow_pattentions
from .stack import BlockStack

__all__ = ["DecoderLM", "LMOutput", "ModelConfig", "parse_schedule", "tile"]


@dataclass
class LMOutput:
    logits: torch.Tensor
    loss: torch.Tensor | None = None
    aux_loss: torch.Tensor | None = None
    states: list[Any] | None = None
    aux_losses: dict[str, torch.Tensor] = field(default_factory=dict)


class DecoderLM(BlockStack):
    """A pre-norm decoder LM over any schedule of registered token mixers (``BlockStack``).

    ``forward(input_ids [B, T], labels=None, states=None, step=False)`` returns logits ``[B, T, vocab]``, the
    mean cross-entropy over labels != -100 (labels aligned with the inputs: position t predicts labels[t]), the
    channel mixers' auxiliary losses of a training forward (``aux_losses``: per name, summed over layers, each with
    its coefficient; ``aux_loss``: their sum, which training adds to the loss), and the per-layer mixer states.
    A language model is causal: ``model.bidirectional`` is refused.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        if config.bidirectional:
            raise ConfigError("model.bidirectional=true: a language model predicts the next token and must not see "
                              "it; bidirectional models are for classification and forecasting tasks")
        self._check_config(config)
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.embed_dropout = nn.Dropout(config.dropout)
        self._build_stack()
        self.head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        nn.init.normal_(self.embed.weight, std=config.d_model**-0.5)
        if config.tie_embeddings:
            self.head.weight = self.embed.weight

    def submodel(self, k: int) -> DecoderLM:
        """The model of the first k of ``config.chains`` chains (``gatelab.models.chain.chain_submodel``)."""
        return chain_submodel(self, k)

    def grow(self, qkv: int = 0, proj: int = 0, ffn: int = 0) -> DecoderLM:
        """TokenFormer's progressive scaling: append ``qkv`` parameter tokens to every tokenformer mixer's q, k and v
        Pattentions, ``proj`` to its output Pattention and ``ffn`` to every pattention channel mixer, with zero keys,
        so the logits are unchanged; ``config`` records the new counts (a saved model loads grown). Returns this
        model; rebuild the optimizer afterwards (new Parameters). See ``gatelab.models.grow.grow_pattentions``."""
        grow_pattentions(self, qkv, proj, ffn)
        return self

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor | None = None, states: list[Any] | None = None,
                step: bool = False) -> LMOutput:
        if input_ids.shape[1] > self.config.max_seq_len:
            raise ValueError(f"sequence length {input_ids.shape[1]} exceeds "
                             f"model.max_seq_len={self.config.max_seq_len}")
        h, new_states = self.encode(self.embed_dropout(self.embed(input_ids)), states, step)
        logits = self.head(h)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100)
        aux = self.collect_aux()
        total = torch.stack(list(aux.values())).sum() if aux else None
        return LMOutput(logits, loss, total, new_states, aux)

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, max_new_tokens: int, temperature: float = 0.0,
                 top_k: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Continue ``input_ids [B, T]`` by max_new_tokens: prefill once, then one decoding step per token with
        each mixer's state (KV cache or recurrent state). ``temperature == 0`` is greedy; otherwise sampling,
        optionally from the top_k logits. Returns ``[B, T + max_new_tokens]``."""
        total = input_ids.shape[1] + max_new_tokens
        if total > self.config.max_seq_len:
            raise ValueError(f"prompt + new tokens = {total} exceeds model.max_seq_len={self.config.max_seq_len}")
        out = self(input_ids)
        tokens, states, logits = [input_ids], out.states, out.logits[:, -1]
        for _ in range(max_new_tokens):
            nxt = _pick(logits, temperature, top_k, generator)
            tokens.append(nxt)
            out = self(nxt, states=states, step=True)
            states, logits = out.states, out.logits[:, -1]
        return torch.cat(tokens, dim=1)


def _pick(logits: torch.Tensor, temperature: float, top_k: int | None,
          generator: torch.Generator | None) -> torch.Tensor:
    if temperature <= 0:
        return logits.argmax(-1, keepdim=True)
    logits = logits.float() / temperature
    if top_k is not None:
        kth = logits.topk(min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, -math.inf)
    return torch.multinomial(logits.softmax(-1), 1, generator=generator)
