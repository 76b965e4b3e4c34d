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
from ..registry import CHANNEL_MIXERS, MIXERS, RESIDUALS, Registry
from .block import Block, finish_stream
from .chain import chain_submodel, check_chains


def parse_schedule(spec: str, registry: Registry = MIXERS, allowed: tuple[str, ...] = ()) -> list[str]:
    """Keys of ``registry`` (token mixers by default) from a schedule: one key (``"gla"``), a list
    (``"gdn,gdn,gdn,gated_attn"``) or a ratio (``"gdn:gated_attn=3:1"``, the same as the list). Unknown keys are
    errors that list the valid ones; ``allowed`` names extra keys that are not registered (``"none"``)."""
    if "=" in spec:
        names, _, counts = spec.partition("=")
        keys, ns = names.split(":"), counts.split(":")
        if len(keys) != len(ns) or not all(n.strip().isdigit() and int(n) > 0 for n in ns):
            raise ConfigError(f"hybrid ratio {spec!r} must look like a:b=3:1 (one positive count per {registry.kind})")
        out = [k.strip() for k, n in zip(keys, ns, strict=True) for _ in range(int(n))]
    else:
        out = [k.strip() for k in spec.split(",") if k.strip()]
    if not out:
        raise ConfigError(f"the {registry.kind} schedule is empty; give a key, a list a,b,c or a ratio a:b=3:1")
    for key in out:
        if key not in allowed:
            registry.get(key)
    return out


def tile(keys: list[str], n_layers: int, field: str) -> list[str]:
    """A schedule tiled over ``n_layers`` (its length must divide n_layers)."""
    if len(keys) > n_layers or n_layers % len(keys):
        raise ConfigError(f"{field} schedule {keys} (length {len(keys)}) must divide n_layers={n_layers}")
    return [keys[i % len(keys)] for i in range(n_layers)]


@dataclass(kw_only=True)
class ModelConfig:
    """A decoder-only language model.

    mixer: one registry key, or a schedule tiled over the layers: a list (``"gla,gla,gla,gated_attn"``) or a
        ratio (``"gla:gated_attn=3:1"``).
    mixer_options: per mixer key, extra options for that mixer (``{"gated_attn": {"gate_granularity": "headwise"}}``);
        every mixer receives ``d_model`` and ``n_heads`` (which mixer_options may override). Options for mixers
        that are not in the schedule are allowed (one config can serve a sweep over mixers).
    channel: a channel-mixer key (``gatelab mixers`` lists them) or ``"none"``, or a schedule like the mixer's
        (``"swiglu,moe"``); d_ff 0 means each channel mixer's default width (for mixtures of experts: each expert's).
    channel_options: per channel-mixer key, its options (``{"moe": {"n_experts": 8, "top_k": 2}}``).
    residual: how each branch joins the residual stream (``add``, the GTrXL gates ``gtrxl_gru`` ..., ``ladder``);
        residual_options: that connection's options (``{"gtrxl_gru": {"bias": 2.0}}``).
    chains: Chain-of-Model (Song et al. 2025): the hidden state splits into this many chains of d_model / chains
        channels, chain i depending on chains <= i everywhere, so ``DecoderLM.submodel(k)`` is a smaller model
        (``gatelab.models.chain``); > 1 needs chain-aware mixers (attn, gated_attn, swa, liger) and channel (chain).
    short_conv: kernel of an ungated short causal convolution ahead of every token mixer (0: none), gatelab's MQAR
        protocol (Zoology alternates layers of its gated ``base_conv`` with the mixer instead: a schedule
        ``base_conv,<mixer>``).
    dropout: training-time dropout on the embeddings and on each residual branch (mixer and channel outputs),
        as in GPT-2; 0 disables it. Evaluation and generation never drop.
    """

    vocab_size: int = 512
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    mixer: str = "attn"
    mixer_options: dict[str, dict] = field(default_factory=dict)
    channel: str = "swiglu"
    channel_options: dict[str, dict] = field(default_factory=dict)
    d_ff: int = 0
    residual: str = "add"
    residual_options: dict[str, dict] = field(default_factory=dict)
    chains: int = 1
    short_conv: int = 0
    norm: Literal["rmsnorm", "layernorm"] = "rmsnorm"
    norm_eps: float = 1e-5
    tie_embeddings: bool = True
    max_seq_len: int = 4096
    dropout: float = 0.0

    RANGES: ClassVar[dict[str, str]] = {"vocab_size": "[1, inf)", "d_model": "[1, inf)", "n_layers": "[1, inf)",
                                        "n_heads": "[1, inf)", "d_ff": "[0, inf)", "short_conv": "[0, inf)",
                                        "chains": "[1, inf)", "norm_eps": "(0, inf)", "max_seq_len": "[1, inf)",
                                        "dropout": "[0, 1)"}

    def schedule(self) -> list[str]:
        """The mixer key of each layer."""
        return tile(parse_schedule(self.mixer), self.n_layers, "model.mixer")

    def channel_schedule(self) -> list[str]:
        """The channel-mixer key of each layer (``"none"``: no channel mixer)."""
        return tile(parse_schedule(self.channel, CHANNEL_MIXERS, allowed=("none",)), self.n_layers, "model.channel")


@dataclass
class LMOutput:
    logits: torch.Tensor
    loss: torch.Tensor | None = None
    aux_loss: torch.Tensor | None = None
    states: list[Any] | None = None
    aux_losses: dict[str, torch.Tensor] = field(default_factory=dict)


class DecoderLM(nn.Module):
    """A pre-norm decoder LM over any schedule of registered token mixers.

    ``forward(input_ids [B, T], labels=None, states=None, step=False)`` returns logits ``[B, T, vocab]``, the
    mean cross-entropy over labels != -100 (labels aligned with the inputs: position t predicts labels[t]), the
    channel mixers' auxiliary losses of a training forward (``aux_losses``: per name, summed over layers, each with
    its coefficient; ``aux_loss``: their sum, which training adds to the loss), and the per-layer mixer states.

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
        schedule, channels = config.schedule(), config.channel_schedule()
        for key in config.mixer_options:
            MIXERS.get(key)
        for key in config.channel_options:
            CHANNEL_MIXERS.get(key)
        RESIDUALS.get(config.residual)
        for key in config.residual_options:
            RESIDUALS.get(key)
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.embed_dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(self._block(key, ch) for key, ch in zip(schedule, channels, strict=True))
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

    def _block(self, key: str, channel_key: str) -> Block:
        c = self.config
        chains = {"n_chains": c.chains} if c.chains > 1 else {}
        mixer = MIXERS.get(key)(c.d_model, **{"n_heads": c.n_heads, **c.mixer_options.get(key, {}), **chains})
        window = getattr(mixer, "window", None)
        if window is not None and window > c.max_seq_len:
            raise ConfigError(f"{key}: window={window} is longer than model.max_seq_len={c.max_seq_len}; a window "
                              "must fit in the sequence (use attn for full attention)")
        channel = None
        if channel_key != "none":
            options = {**c.channel_options.get(channel_key, {}), **chains}
            channel = CHANNEL_MIXERS.get(channel_key)(c.d_model, c.d_ff or None, **options)
        conv = ShortConv(c.d_model, c.short_conv) if c.short_conv else None
        residual = RESIDUALS.get(c.residual)
        options = c.residual_options.get(c.residual, {})
        return Block(mixer, channel, lambda: build_norm(c.norm, c.d_model, c.norm_eps, c.chains), conv, c.dropout,
                     lambda: residual(c.d_model, **options))

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def num_active_params(self) -> int:
        """The parameters one token uses: all, except that each channel mixer counts its ``active_params()`` (a
        mixture of experts: its router, shared experts and top_k experts)."""
        unused = sum(sum(p.numel() for p in ch.parameters()) - ch.active_params() for _, ch in self.channel_mixers())
        return self.num_params() - unused

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
        new_states, carry = [], {}
        for block, state, bound in zip(self.blocks, states, self.layer_lower_bounds(), strict=True):
            x, state = block(x, state, step=step, lower_bound=bound, carry=carry)
            new_states.append(state)
        logits = self.head(self.norm(finish_stream(x, carry)))
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100)
        aux = self.aux_losses() if self.training else {}
        for _, ch in self.channel_mixers():   # collected: the modules keep no graph (a model stays deep-copyable)
            ch.aux = {}
        total = torch.stack(list(aux.values())).sum() if aux else None
        return LMOutput(logits, loss, total, new_states, aux)

    def aux_losses(self) -> dict[str, torch.Tensor]:
        """The channel mixers' auxiliary losses of the last training forward, per name, summed over layers."""
        out: dict[str, torch.Tensor] = {}
        for block in self.blocks:
            for name, value in block.aux_losses().items():
                out[name] = out[name] + value if name in out else value
        return out

    def channel_mixers(self) -> list[tuple[int, nn.Module]]:
        """(layer, channel mixer) for every layer that has one."""
        return [(i, b.channel) for i, b in enumerate(self.blocks) if b.channel is not None]

    def channel_stats(self) -> dict[str, dict[str, Any]]:
        """Each channel mixer's statistics since the last ``reset_channel_stats`` (routing: experts per token,
        dropped fraction, load, ...), by layer (``"layer3"``); layers with none are left out."""
        return {f"layer{i}": s for i, ch in self.channel_mixers() if (s := ch.stats())}

    def reset_channel_stats(self) -> None:
        for _, ch in self.channel_mixers():
            ch.reset_stats()

    def on_train_step(self, step: int, max_steps: int) -> list[nn.Parameter]:
        """Tell every channel mixer that training step ``step`` (0-based) of ``max_steps`` begins (schedules);
        returns the parameters whose rows 1.. a mixer has just copied from row 0 (see ``ChannelMixer``)."""
        return [p for _, ch in self.channel_mixers() for p in ch.on_train_step(step, max_steps) or []]

    def may_skip_parameters(self) -> bool:
        """Whether a forward may leave some parameters unused (data-parallel training must then look for them)."""
        return any(getattr(ch, "may_skip_parameters", False) for _, ch in self.channel_mixers())

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
