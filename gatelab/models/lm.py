"""DecoderLM: embedding -> blocks (per-layer mixer schedule) -> final norm -> LM head; with stateful generation."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from .. import layers  # noqa: F401  (registers the mixers)
from ..config import ConfigError, check_ranges
from ..layers.conv import ShortConv
from ..layers.norm import build_norm
from ..registry import CHANNEL_MIXERS, MIXERS
from .block import Block
from .chain import chain_submodel, check_chains


def parse_schedule(spec: str) -> list[str]:
    """Mixer keys from a schedule: one key (``"gla"``), a list (``"gdn,gdn,gdn,gated_attn"``) or a ratio
    (``"gdn:gated_attn=3:1"``, the same as the list). Unknown keys are errors that list the valid ones."""
    if "=" in spec:
        names, _, counts = spec.partition("=")
        keys, ns = names.split(":"), counts.split(":")
        if len(keys) != len(ns) or not all(n.strip().isdigit() and int(n) > 0 for n in ns):
            raise ConfigError(f"hybrid ratio {spec!r} must look like a:b=3:1 (one positive count per mixer)")
        out = [k.strip() for k, n in zip(keys, ns, strict=True) for _ in range(int(n))]
    else:
        out = [k.strip() for k in spec.split(",") if k.strip()]
    if not out:
        raise ConfigError("the mixer schedule is empty; give a mixer key, a list a,b,c or a ratio a:b=3:1")
    for key in out:
        MIXERS.get(key)
    return out


@dataclass(kw_only=True)
class ModelConfig:
    """A decoder-only language model.

    mixer: one registry key, or a schedule tiled over the layers: a list (``"gla,gla,gla,gated_attn"``) or a
        ratio (``"gla:gated_attn=3:1"``).
    mixer_options: per mixer key, extra options for that mixer (``{"gated_attn": {"gate_granularity": "headwise"}}``);
        every mixer receives ``d_model`` and ``n_heads`` (which mixer_options may override). Options for mixers
        that are not in the schedule are allowed (one config can serve a sweep over mixers).
    channel: ``"swiglu"``, ``"mlp"`` or ``"none"``; d_ff 0 means the channel mixer's default width.
    short_conv: kernel of an ungated short causal convolution ahead of every token mixer (0: none), gatelab's MQAR
        protocol (Zoology alternates layers of its gated ``base_conv`` with the mixer instead: a schedule
        ``base_conv,<mixer>``).
    dropout: training-time dropout on the embeddings and on each residual branch (mixer and channel outputs),
        as in GPT-2; 0 disables it. Evaluation and generation never drop.
    chains: Chain-of-Model (Song et al. 2025): the hidden state splits into this many chains of d_model / chains
        channels, chain i depending on chains <= i everywhere, so ``DecoderLM.submodel(k)`` is a smaller model
        (``gatelab.models.chain``); > 1 needs chain-aware mixers (attn, gated_attn, swa, liger) and channel (chain).
    """

    vocab_size: int = 512
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    mixer: str = "attn"
    mixer_options: dict[str, dict] = field(default_factory=dict)
    channel: str = "swiglu"
    d_ff: int = 0
    short_conv: int = 0
    norm: Literal["rmsnorm", "layernorm"] = "rmsnorm"
    norm_eps: float = 1e-5
    tie_embeddings: bool = True
    max_seq_len: int = 4096
    dropout: float = 0.0
    chains: int = 1

    RANGES: ClassVar[dict[str, str]] = {"vocab_size": "[1, inf)", "d_model": "[1, inf)", "n_layers": "[1, inf)",
                                        "n_heads": "[1, inf)", "d_ff": "[0, inf)", "short_conv": "[0, inf)",
                                        "norm_eps": "(0, inf)", "max_seq_len": "[1, inf)", "dropout": "[0, 1)",
                                        "chains": "[1, inf)"}

    def schedule(self) -> list[str]:
        """The mixer key of each layer."""
        keys = parse_schedule(self.mixer)
        if len(keys) > self.n_layers or self.n_layers % len(keys):
            raise ConfigError(f"model.mixer schedule {keys} (length {len(keys)}) must divide n_layers={self.n_layers}")
        return [keys[i % len(keys)] for i in range(self.n_layers)]


@dataclass
class LMOutput:
    logits: torch.Tensor
    loss: torch.Tensor | None = None
    aux_loss: torch.Tensor | None = None
    states: list[Any] | None = None


class DecoderLM(nn.Module):
    """A pre-norm decoder LM over any schedule of registered token mixers.

    ``forward(input_ids [B, T], labels=None, states=None, step=False)`` returns logits ``[B, T, vocab]``, the
    mean cross-entropy over labels != -100 (labels aligned with the inputs: position t predicts labels[t]), the
    summed auxiliary loss of the channel mixers, and the per-layer mixer states.

    When a layer's mixer takes a forget-gate lower bound (``mixer.lower_bound_dim > 0``: hgrn2), the model holds
    ``lower_bounds [n_layers, lower_bound_dim]`` (zeros) and gives each such layer its row of
    ``layer_lower_bounds()``, as HGRN's models do (Qin et al. 2023, arXiv 2311.04823; flash-linear-attention's
    HGRN2Model, which leaves ``lower_bounds`` under weight decay, as here).
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        check_ranges(config, "model")  # a config built in Python has not been through from_dict
        check_chains(config)
        self.config = config
        schedule = config.schedule()
        for key in config.mixer_options:
            MIXERS.get(key)
        if config.channel != "none":
            CHANNEL_MIXERS.get(config.channel)
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.embed_dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(self._block(key) for key in schedule)
        widths = {b.mixer.lower_bound_dim for b in self.blocks} - {0}
        if len(widths) > 1:
            raise ConfigError(f"model.mixer schedule {schedule}: the mixers that take a forget-gate lower bound want "
                              f"widths {sorted(widths)}; they share one lower_bounds table, so give them one width")
        self.lower_bounds = nn.Parameter(torch.zeros(config.n_layers, widths.pop())) if widths else None
        self.norm = build_norm(config.norm, config.d_model, config.norm_eps, chains=config.chains)
        self.head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        nn.init.normal_(self.embed.weight, std=config.d_model**-0.5)
        if config.tie_embeddings:
            self.head.weight = self.embed.weight

    def _block(self, key: str) -> Block:
        c = self.config
        chains = {"n_chains": c.chains} if c.chains > 1 else {}
        mixer = MIXERS.get(key)(c.d_model, **{"n_heads": c.n_heads, **c.mixer_options.get(key, {}), **chains})
        window = getattr(mixer, "window", None)
        if window is not None and window > c.max_seq_len:
            raise ConfigError(f"{key}: window={window} is longer than model.max_seq_len={c.max_seq_len}; a window "
                              "must fit in the sequence (use attn for full attention)")
        channel = None if c.channel == "none" else CHANNEL_MIXERS.get(c.channel)(c.d_model, c.d_ff or None, **chains)
        conv = ShortConv(c.d_model, c.short_conv) if c.short_conv else None
        return Block(mixer, channel, lambda: build_norm(c.norm, c.d_model, c.norm_eps, c.chains), conv, c.dropout)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def submodel(self, k: int) -> DecoderLM:
        """The model of the first k of ``config.chains`` chains (``gatelab.models.chain.chain_submodel``)."""
        return chain_submodel(self, k)

    def layer_lower_bounds(self) -> list[torch.Tensor | None]:
        """Each layer's forget-gate lower bound ``[lower_bound_dim]``: the softmax of ``lower_bounds`` over the
        layers (in float32 or wider), its cumulative sum minus the first row, so bounds grow from 0 at the first
        layer towards 1 at the top. None for the first layer (bound 0) and for layers whose mixer takes none."""
        if self.lower_bounds is None:
            return [None] * len(self.blocks)
        p = self.lower_bounds.softmax(0, dtype=torch.promote_types(self.lower_bounds.dtype, torch.float32))
        bounds = p.cumsum(0) - p[0]                                                      # (n_layers, width)
        return [bounds[i] if i > 0 and b.mixer.lower_bound_dim else None for i, b in enumerate(self.blocks)]

    def init_states(self, batch_size: int) -> list[Any]:
        return [block.init_state(batch_size) for block in self.blocks]

    def state_size(self, seq_len: int) -> int:
        """Floats held per sequence by all token mixers (and short convolutions) after seq_len tokens."""
        conv = sum(b.conv.d_model * (b.conv.kernel_size - 1) for b in self.blocks if b.conv is not None)
        return conv + sum(block.mixer.state_size(seq_len) for block in self.blocks)

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor | None = None, states: list[Any] | None = None,
                step: bool = False) -> LMOutput:
        if input_ids.shape[1] > self.config.max_seq_len:
            raise ValueError(f"sequence length {input_ids.shape[1]} exceeds "
                             f"model.max_seq_len={self.config.max_seq_len}")
        x = self.embed_dropout(self.embed(input_ids))
        states = states if states is not None else [None] * len(self.blocks)
        new_states = []
        for block, state, bound in zip(self.blocks, states, self.layer_lower_bounds(), strict=True):
            x, state = block(x, state, step=step, lower_bound=bound)
            new_states.append(state)
        logits = self.head(self.norm(x))
        aux = [a for a in (b.aux_loss() for b in self.blocks) if a is not None]
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100)
        return LMOutput(logits, loss, torch.stack(aux).sum() if aux else None, new_states)

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
