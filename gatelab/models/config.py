"""The model config every gatelab model is built from: mixer, channel-mixer and residual schedules, sizes, and the
bidirectional form of the token mixers."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from .. import layers  # noqa: F401  (registers the mixers)
from ..config import ConfigError
from ..registry import CHANNEL_MIXERS, MIXERS, Registry


def decoder_mixers() -> list[str]:
    """The registered token mixers a causal model can use (all but the bidirectional-only ones)."""
    return [key for key in MIXERS.names() if getattr(MIXERS.get(key), "directions", "causal") != "bidirectional"]


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
    """The layers of a gatelab model (a ``DecoderLM``, a ``SequenceClassifier`` or a ``Forecaster``).

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
    bidirectional: every token mixer sees the whole sequence (classifiers and forecasters; a language model must
        be causal). Attention drops its causal mask; every other mixer runs as a forward and a reverse scan
        (``gatelab.layers.token.bidirectional``), with one set of parameters for both directions
        (``bidirectional_params="shared"``: the causal form's parameter count) or one per direction
        (``"separate"``: each direction its own gates, as ViG's direction-wise decay gates), averaged as ViG
        averages its scans (``bidirectional_combine="mean"``), combined by a learned sigmoid gate per direction and
        channel (``"gate"``) or summed (``"add"``). Mixers that exist only in bidirectional form (``vig``) need
        it.
    loop: the looped transformer (Universal Transformer, Dehghani et al. 2019, arXiv 1807.03819; the looped
        transformer of AlgoFormer, Gao et al. 2024, arXiv 2402.13572): the blocks run ``loop`` times over the
        stream with the same weights, so parameters stay those of n_layers blocks while the depth, the compute and
        the decoding state (one state per application of a block) grow ``loop``-fold. AlgoFormer's structure is a
        pre-transformer, a looped transformer iterated ``loop`` times and a post-transformer: ``loop_pre`` first
        layers and ``loop_post`` last layers run once, before and after the loop over the layers between them
        (default 0 and 0: the whole stack loops).
    learned_initial_state: every application of a block whose mixer keeps a recurrent memory (gla, hgrn, mamba,
        ...) starts a sequence from a learned memory (parameters ``initial_states.<application>``, zeros at first)
        instead of zeros: initial-state tuning (Lina-Speech, Lemerle et al. 2024, arXiv 2410.23320; see
        ``gatelab.models.initial_state``), which ``train.tune=initial_state`` turns on and trains alone.
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
    bidirectional: bool = False
    bidirectional_params: Literal["shared", "separate"] = "shared"
    bidirectional_combine: Literal["mean", "gate", "add"] = "mean"
    loop: int = 1
    loop_pre: int = 0
    loop_post: int = 0
    learned_initial_state: bool = False

    RANGES: ClassVar[dict[str, str]] = {"vocab_size": "[1, inf)", "d_model": "[1, inf)", "n_layers": "[1, inf)",
                                        "n_heads": "[1, inf)", "d_ff": "[0, inf)", "short_conv": "[0, inf)",
                                        "chains": "[1, inf)", "norm_eps": "(0, inf)", "max_seq_len": "[1, inf)",
                                        "dropout": "[0, 1)", "loop": "[1, inf)", "loop_pre": "[0, inf)",
                                        "loop_post": "[0, inf)"}

    def schedule(self) -> list[str]:
        """The mixer key of each layer."""
        return tile(parse_schedule(self.mixer), self.n_layers, "model.mixer")

    def channel_schedule(self) -> list[str]:
        """The channel-mixer key of each layer (``"none"``: no channel mixer)."""
        return tile(parse_schedule(self.channel, CHANNEL_MIXERS, allowed=("none",)), self.n_layers, "model.channel")

    def layer_order(self) -> list[int]:
        """The layer (block index) of each application of a block, in order: ``range(n_layers)`` without a loop;
        with one, the ``loop_pre`` first layers, the looped ones ``loop`` times over, then the ``loop_post`` last."""
        pre, post, n = self.loop_pre, self.loop_post, self.n_layers
        if self.loop == 1 and (pre or post):
            raise ConfigError(f"model.loop_pre={pre}, model.loop_post={post} have no effect with model.loop=1; set "
                              "model.loop > 1 or leave them at 0")
        if pre + post >= n:
            raise ConfigError(f"model.loop_pre={pre} + model.loop_post={post} must leave at least one of "
                              f"model.n_layers={n} layers to loop")
        return list(range(pre)) + list(range(pre, n - post)) * self.loop + list(range(n - post, n))
