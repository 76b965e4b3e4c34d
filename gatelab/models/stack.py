"""The stack of blocks every gatelab model is built around: the per-layer mixer, channel-mixer and residual
schedules, HGRN's shared forget-gate lower bounds, the final norm, and what the training loop asks of a model
(auxiliary losses, routing statistics, active parameters, state size)."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import torch
from torch import nn

from ..config import ConfigError, check_ranges
from ..layers.base import TokenMixer, no_weight_decay
from ..layers.conv import ShortConv
from ..layers.norm import build_norm
from ..layers.token.bidirectional import bidirectional_mixer
from ..registry import CHANNEL_MIXERS, MIXERS, RESIDUALS
from .block import Block, finish_stream
from .chain import check_chains
from .config import ModelConfig
from .initial_state import build_initial_states, expand_initial_states, memory_shape

LENGTHS = "lengths"   # the carry key of the unpadded lengths [B] that non-causal mixers mask padding with


def with_depth(cls: type, options: dict[str, Any], n_layers: int) -> dict[str, Any]:
    """``options`` with ``init_n_layers=n_layers`` when ``cls``'s Config has that option and leaves it None: a
    layer whose init follows the model's depth (TokenFormer's ``wang_init``) gets the real one; a value given
    explicitly is kept."""
    config = getattr(cls, "Config", None)
    if config is None or "init_n_layers" not in {f.name for f in fields(config)} or \
            options.get("init_n_layers") is not None:
        return options
    return {**options, "init_n_layers": n_layers}


@dataclass
class TaskOutput:
    """What a classifier or a forecaster returns: ``logits`` (class scores ``[B, classes]``, or forecasts
    ``[B, horizon, variates]``), the task loss, and the channel mixers' auxiliary losses as ``DecoderLM`` gives them."""

    logits: torch.Tensor
    loss: torch.Tensor | None = None
    aux_loss: torch.Tensor | None = None
    aux_losses: dict[str, torch.Tensor] = field(default_factory=dict)


class BlockStack(nn.Module):
    """``config.n_layers`` pre-norm blocks and a final norm; subclasses add what goes in and what comes out.

    When a layer's mixer takes a forget-gate lower bound (``mixer.lower_bound_dim > 0``: hgrn2), the model holds
    ``lower_bounds [n_layers, lower_bound_dim]`` (zeros) and gives each such layer its row of
    ``layer_lower_bounds()``, as HGRN's models do (Qin et al. 2023, arXiv 2311.04823; flash-linear-attention's
    HGRN2Model, which leaves ``lower_bounds`` under weight decay, as here).

    With ``config.bidirectional`` every token mixer sees the whole sequence: one that attends in both directions
    itself (``directions == "both"``: attention) is built with ``causal=False``, one that exists only in that form
    (``"bidirectional"``) as it is, and every causal one is wrapped in ``Bidirectional`` (a forward and a reverse
    scan). A bidirectional-only mixer in a causal model is an error.

    With ``config.loop > 1`` the blocks run in ``config.layer_order()`` (weights shared by every application of a
    block, each application with its own mixer state and the block's lower bound): ``states`` then holds one
    entry per application, ``len(layer_order())``, and the state size grows with it.
    """

    def _check_config(self, config: ModelConfig) -> None:
        """Check ``config`` (ranges, chains, every key it names) and keep it as ``self.config``."""
        check_ranges(config, "model")  # a config built in Python has not been through from_dict
        check_chains(config)
        config.layer_order()
        for key in config.mixer_options:
            MIXERS.get(key)
        for key in config.channel_options:
            CHANNEL_MIXERS.get(key)
        RESIDUALS.get(config.residual)
        for key in config.residual_options:
            RESIDUALS.get(key)
        self.config = config

    def _build_stack(self) -> None:
        """The blocks, the shared lower bounds and the final norm of ``self.config``."""
        config = self.config
        schedule, channels = config.schedule(), config.channel_schedule()
        self.blocks = nn.ModuleList(self._block(key, ch) for key, ch in zip(schedule, channels, strict=True))
        widths = {b.mixer.lower_bound_dim for b in self.blocks} - {0}
        if len(widths) > 1:
            raise ConfigError(f"model.mixer schedule {schedule}: the mixers that take a forget-gate lower bound want "
                              f"widths {sorted(widths)}; they share one lower_bounds table, so give them one width")
        self.lower_bounds = nn.Parameter(torch.zeros(config.n_layers, widths.pop())) if widths else None
        self.norm = build_norm(config.norm, config.d_model, config.norm_eps, chains=config.chains)
        self.initial_states = self._learned_initial_states() if config.learned_initial_state else None
        self._applied_aux: dict[str, torch.Tensor] = {}   # the channel mixers' aux losses of the last forward

    def _learned_initial_states(self) -> nn.ParameterDict:
        """``config.learned_initial_state``: a learned recurrent memory for every application of a block whose
        mixer keeps one (``gatelab.models.initial_state``), exempt from weight decay (it is a state, not a weight:
        decay would pull it back to zeros)."""
        config, schedule = self.config, self.config.schedule()
        if config.bidirectional:
            raise ConfigError("model.learned_initial_state=true: a learned initial state starts a causal scan; a "
                              "bidirectional model has none")
        shapes = {key: memory_shape(lambda key=key: self._mixer(key), config.d_model) for key in set(schedule)}
        learned = build_initial_states([shapes[schedule[i]] for i in config.layer_order()])
        if not len(learned):
            raise ConfigError(f"model.learned_initial_state=true, but no mixer of {sorted(set(schedule))} keeps a "
                              "recurrent memory to learn (gla, hgrn, hgrn2, gdn, deltanet, mamba, mamba2, retnet, "
                              "linear_attn, based and liger do); attention's KV cache has no learned form")
        no_weight_decay(learned, *learned.keys())
        return learned

    def start_states(self, batch_size: int) -> list[Any]:
        """The state each application of a block starts a sequence from: the learned one where the model has one
        (``config.learned_initial_state``), else None (the mixer's default, zeros)."""
        if self.initial_states is None:
            return [None] * len(self.config.layer_order())
        blocks = [self.blocks[i] for i in self.config.layer_order()]
        return expand_initial_states(self.initial_states, blocks, batch_size)

    def _mixer(self, key: str) -> TokenMixer:
        """The token mixer of one layer, in the model's direction(s)."""
        c = self.config
        cls = MIXERS.get(key)
        chains = {"n_chains": c.chains} if c.chains > 1 else {}
        options = with_depth(cls, {"n_heads": c.n_heads, **c.mixer_options.get(key, {}), **chains}, c.n_layers)
        if c.bidirectional:
            return bidirectional_mixer(key, c.d_model, options, c.bidirectional_params, c.bidirectional_combine)
        if getattr(cls, "directions", "causal") == "bidirectional":
            raise ConfigError(f"model.mixer {key!r} exists only in bidirectional form; set model.bidirectional="
                              "true (a classifier or forecaster), or choose a causal mixer")
        mixer = cls(c.d_model, **options)
        if not getattr(mixer, "decodable", True):
            raise ConfigError(f"model.mixer {key!r} with options {options}: this form reads the whole sequence "
                              "(it cannot be decoded token by token), so a causal model cannot use it; set "
                              "model.bidirectional=true or choose the mixer's causal form")
        return mixer

    def _block(self, key: str, channel_key: str) -> Block:
        c = self.config
        chains = {"n_chains": c.chains} if c.chains > 1 else {}
        mixer = self._mixer(key)
        window = getattr(mixer, "window", None)
        if window is not None and window > c.max_seq_len:
            raise ConfigError(f"{key}: window={window} is longer than model.max_seq_len={c.max_seq_len}; a window "
                              "must fit in the sequence (use attn for full attention)")
        channel = None
        if channel_key != "none":
            cls = CHANNEL_MIXERS.get(channel_key)
            options = with_depth(cls, {**c.channel_options.get(channel_key, {}), **chains}, c.n_layers)
            channel = cls(c.d_model, c.d_ff or None, **options)
        conv = ShortConv(c.d_model, c.short_conv) if c.short_conv else None
        residual = RESIDUALS.get(c.residual)
        options = c.residual_options.get(c.residual, {})
        return Block(mixer, channel, lambda: build_norm(c.norm, c.d_model, c.norm_eps, c.chains), conv, c.dropout,
                     lambda: residual(c.d_model, **options), whole_sequence=c.bidirectional)

    def encode(self, x: torch.Tensor, states: list[Any] | None = None, step: bool = False,
               lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, list[Any]]:
        """The blocks and the final norm over embedded inputs ``x [B, T, d_model]``: the normalised last hidden
        state ``[B, T, d_model]`` and each layer's mixer state. ``lengths [B]``: the unpadded length of each
        right-padded sequence (a bidirectional model masks the padding with it)."""
        order, bounds = self.config.layer_order(), self.layer_lower_bounds()
        states = states if states is not None else self.start_states(x.shape[0])
        new_states, carry = [], {} if lengths is None else {LENGTHS: lengths}
        self._applied_aux = {}
        for i, state in zip(order, states, strict=True):
            x, state = self.blocks[i](x, state, step=step, lower_bound=bounds[i], carry=carry)
            new_states.append(state)
            for name, value in self.blocks[i].aux_losses().items():   # each application's (model.loop > 1)
                self._applied_aux[name] = self._applied_aux[name] + value if name in self._applied_aux else value
        carry.pop(LENGTHS, None)
        return self.norm(finish_stream(x, carry)), new_states

    def collect_aux(self) -> dict[str, torch.Tensor]:
        """The channel mixers' auxiliary losses of the last forward when training (empty otherwise), per name;
        the modules' own records are cleared (they keep no graph, so a model stays deep-copyable)."""
        aux = self.aux_losses() if self.training else {}
        for _, ch in self.channel_mixers():
            ch.aux = {}
        for stack in self.modules():   # this stack and any it holds (Gateformer's variate encoder)
            if isinstance(stack, BlockStack):
                stack._applied_aux = {}
        return aux

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def num_active_params(self) -> int:
        """The parameters one token uses: all, except that each channel mixer counts its ``active_params()`` (a
        mixture of experts: its router, shared experts and top_k experts)."""
        unused = sum(sum(p.numel() for p in ch.parameters()) - ch.active_params() for _, ch in self.channel_mixers())
        return self.num_params() - unused

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
        """Each application's state before the first token (with its learned memory, where there is one)."""
        default = [self.blocks[i].init_state(batch_size) for i in self.config.layer_order()]
        return [s if s is not None else d for s, d in zip(self.start_states(batch_size), default, strict=True)]

    def state_size(self, seq_len: int) -> int:
        """Floats held per sequence by all token mixers (and short convolutions) after seq_len tokens, counted
        once per application of each block."""
        blocks = [self.blocks[i] for i in self.config.layer_order()]
        conv = sum(b.conv.d_model * (b.conv.kernel_size - 1) for b in blocks if b.conv is not None)
        return conv + sum(block.mixer.state_size(seq_len) for block in blocks)

    def aux_losses(self) -> dict[str, torch.Tensor]:
        """The channel mixers' auxiliary losses of the last training forward, per name, summed over the
        applications of the blocks (every layer once, or ``model.loop`` times)."""
        return dict(self._applied_aux)

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
