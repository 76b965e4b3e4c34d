"""Named grids for ``gatelab compare``: which mixers, lengths, widths, seeds and learning rates to run."""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from .config import ConfigError, check_ranges
from .models.config import decoder_mixers
from .models.lm import ModelConfig, parse_schedule
from .models.params import count_active_params, match_params
from .registry import CHANNEL_MIXERS, RESIDUALS
from .task_grids import grid_mixer_options, task_grid
from .train.budget import steps_for_budget
from .train.config import LMTaskConfig, MQARTaskConfig, TrainConfig, check_buildable
from .train.sweep import SweepRun
from .train.tasks import task_class


def safe_name(text: str) -> str:
    """``text`` as part of a file name that every filesystem accepts: a hybrid's ``,`` ``:`` ``=`` become ``+``
    ``-`` ``_`` (``gdn:gated_attn=3:1`` -> ``gdn-gated_attn_3-1``) and any other character outside
    ``[A-Za-z0-9._+-]`` becomes ``_``."""
    text = text.replace(":", "-").replace("=", "_").replace(",", "+")
    return re.sub(r"[^A-Za-z0-9._+-]", "_", text)


@dataclass(kw_only=True)
class CompareGrid:
    """A comparison grid. Each (mixer, d_model, seq_len, seed) cell is trained once per learning rate; the
    report keeps the best learning rate per cell and seed, then gives mean and std over seeds (Zoology's
    protocol). ``base`` holds everything else (task, steps, batch, data, layers). ``channels`` and ``residuals``
    (None: the base model's) add the channel mixer and the residual connection as grid dimensions. With
    ``match_params``, every model's channel-mixer width (d_ff) is set so it has as many active parameters per token
    as the first (mixer, channel, residual) at the same width: for dense models all parameters, for mixtures of
    experts the router, shared and top_k experts (language-model grids; MQAR models have no channel mixer and
    compare at equal width, as Zoology does).
    With ``budget_minutes`` > 0, each cell trains for the number of steps its model does in that many minutes on
    this machine (measured once and recorded; ``base.max_steps`` is then ignored): an equal-time comparison.

    ``pairing`` says what mixes tokens beside the mixer under test. ``short_conv`` (gatelab's MQAR protocol): each
    of the ``n_layers`` blocks passes its normalised input through ``h + conv(h)``, an ungated depthwise causal
    convolution of kernel ``base.model.short_conv``, ahead of the mixer, so every layer is a mixer layer.
    ``base_conv`` (Zoology's ``Hybrid``, as its experiment configs build MQAR models): the layers alternate between
    Zoology's gated convolution ``BaseConv`` (layers 0, 2, ...) and the mixer (layers 1, 3, ...), with no short
    convolution, so a 2-layer model has one mixer layer."""

    mixers: list[str]
    seq_lens: list[int]
    d_models: list[int]
    seeds: int
    lrs: list[float]
    base: TrainConfig = field(default_factory=TrainConfig)
    match_params: bool = False
    budget_minutes: float = 0.0
    pairing: str = "short_conv"
    channels: list[str] | None = None
    residuals: list[str] | None = None

    RANGES: ClassVar[dict[str, str]] = {"seq_lens": "[1, inf)", "d_models": "[1, inf)", "seeds": "[1, inf)",
                                        "lrs": "(0, inf)", "budget_minutes": "[0, inf)"}

    def check(self) -> None:
        if not self.mixers:
            raise ConfigError("the grid has no mixers: give at least one mixer key or hybrid")
        for mixer in self.mixers:
            parse_schedule(mixer)
        for channel in self.channels or []:
            parse_schedule(channel, CHANNEL_MIXERS, allowed=("none",))
        for residual in self.residuals or []:
            RESIDUALS.get(residual)
        if self.budget_minutes and self.task not in ("lm", "mqar"):
            raise ConfigError(f"budget_minutes: an equal-time budget is measured for lm and mqar grids; a {self.task} "
                              "grid trains for base.max_steps")

    def variants(self) -> list[tuple[str, str, str]]:
        """Every (mixer, channel, residual) of the grid, the first being the parameter-matching reference."""
        channels = self.channels or [self.base.model.channel]
        residuals = self.residuals or [self.base.model.residual]
        return [(m, c, r) for m in self.mixers for c in channels for r in residuals]

    @property
    def task(self) -> str:
        return self.base.task

    def model_for(self, mixer: str, d_model: int, vocab_size: int, channel: str | None = None,
                  residual: str | None = None) -> ModelConfig:
        """The model of one cell (parameter-matched to the grid's first variant when the grid asks for it)."""
        def build(variant: tuple[str, str | None, str | None]) -> ModelConfig:
            model = copy.deepcopy(self.base.model)
            model.d_model, model.vocab_size = d_model, vocab_size
            self._pair(model, variant[0])
            model.channel, model.residual = variant[1] or model.channel, variant[2] or model.residual
            return model

        model, reference = build((mixer, channel, residual)), self.variants()[0]
        if not self.match_params or (mixer, model.channel, model.residual) == reference:
            return model
        return match_params(model, count_active_params(build(reference)), active=True)

    def heads(self, model: ModelConfig) -> str:
        """The head count of the cell's mixer layers, as the reports print it: one number, or ``key:n`` per mixer
        when the layers differ (the pairing's BaseConv layers have no heads and are left out)."""
        keys = [k for k in dict.fromkeys(model.schedule()) if not (self.pairing == "base_conv" and k == "base_conv")]
        counts = {k: model.mixer_options.get(k, {}).get("n_heads", model.n_heads) for k in keys}
        if len(set(counts.values())) == 1:
            return str(next(iter(counts.values())))
        return " ".join(f"{k}:{n}" for k, n in counts.items())

    def _variant_coords(self, channel: str, residual: str) -> dict[str, str]:
        """The channel and residual of a run, for the grids that vary them (others keep their old run names)."""
        return {**({"channel": channel} if self.channels else {}), **({"residual": residual} if self.residuals else {})}

    def _pair(self, model: ModelConfig, mixer: str) -> None:
        """Set ``model``'s layers for ``mixer`` under the grid's pairing."""
        if self.pairing == "short_conv":
            model.mixer = mixer
            return
        if self.pairing != "base_conv":
            raise ConfigError(f"pairing {self.pairing!r} is not known; choose short_conv or base_conv")
        if len(parse_schedule(mixer)) != 1 or model.n_layers % 2:
            raise ConfigError(f"pairing base_conv alternates Zoology's BaseConv with one mixer over an even number "
                              f"of layers; got mixer {mixer!r} and n_layers={model.n_layers}")
        model.mixer, model.short_conv = f"base_conv,{mixer}", 0

    def runs(self, vocab_size: int | None = None, budget_record: Path | None = None) -> list[SweepRun]:
        """Every run of the grid. ``vocab_size`` (the tokenizer's, for language models) is needed for parameter
        matching, since embeddings count. ``budget_record`` keeps the step counts of a time budget."""
        check_ranges(self)
        self.check()
        out = []
        for mixer, channel, residual in self.variants():
            for d in self.d_models:
                cell = copy.deepcopy(self.base)
                cell.model.d_model, cell.model.channel, cell.model.residual = d, channel, residual
                self._pair(cell.model, mixer)
                check_ranges(cell)
                check_buildable(cell)   # an option the mixer rejects fails here, before anything trains
                model = self.model_for(mixer, d, vocab_size or self.base.model.vocab_size, channel, residual)
                for T in self.seq_lens:
                    for seed in range(self.seeds):
                        for lr in self.lrs:
                            cfg = copy.deepcopy(self.base)
                            cfg.model.mixer, cfg.model.short_conv = model.mixer, model.short_conv
                            cfg.model.channel, cfg.model.residual = model.channel, model.residual
                            cfg.model.d_model, cfg.model.d_ff = d, model.d_ff
                            cfg.seed, cfg.optim.lr = seed, lr
                            task_class(self.task).set_length(cfg, T)
                            check_ranges(cfg)
                            if self.budget_minutes:
                                probe = cfg.resolved(vocab_size)
                                cfg.max_steps = steps_for_budget(probe, 60 * self.budget_minutes, budget_record)
                            coords = {"mixer": mixer, **self._variant_coords(channel, residual), "d_model": d,
                                      "heads": self.heads(model), "seq_len": T, "seed": seed, "lr": lr}
                            name = "-".join([mixer, *self._variant_coords(channel, residual).values(),
                                             f"d{d}-T{T}-s{seed}-lr{lr:g}"])
                            out.append(SweepRun(safe_name(name), coords, cfg))
        return out


def _mqar_base(steps: int, train_examples: int, batch_size: int = 64, eval_every: int = 50) -> TrainConfig:
    """gatelab's MQAR protocol at CPU scale (Zoology's task and metric; its models differ, see ``pairing``): 2
    mixer layers with no channel mixer, each behind an ungated short convolution of kernel 3; one head, except
    ``MULTI_SCALE_HEADS`` for the multi-scale mixers; attn with QK-norm as gated_attn; kv pairs = seq_len / 16,
    vocabulary 512."""
    return TrainConfig(
        mqar=MQARTaskConfig(vocab_size=512, train_examples=train_examples, test_examples=1000),
        model=ModelConfig(n_layers=2, n_heads=1, channel="none", short_conv=3,
                          mixer_options=grid_mixer_options()),
        batch_size=batch_size, max_steps=steps, eval_every=eval_every,
    )


def _lm_base(data: str, steps: int, batch_size: int, eval_every: int) -> TrainConfig:
    """Word-level language modelling: 4 pre-norm layers of mixer + SwiGLU, 4 heads, no short convolution."""
    return TrainConfig(
        task="lm", lm=LMTaskConfig(data=data, tokenizer="word"),
        model=ModelConfig(n_layers=4, n_heads=4, channel="swiglu", short_conv=0, mixer_options=grid_mixer_options()),
        batch_size=batch_size, max_steps=steps, eval_every=eval_every,
    )


TASK_PRESETS = {"mqar": ("default", "quick"), "lm": ("lm", "lm-quick"),
                **{task: (name, f"{name}-quick") for task, name in (
                    ("lra-listops", "listops"), ("lra-text", "lra-text"), ("lra-pathfinder", "pathfinder"),
                    ("lra-image", "lra-image"), ("selective-copying", "selective-copying"),
                    ("induction-heads", "induction-heads"), ("forecast", "forecast"))}}
TASK_OF_PRESET = {name: task for task, names in TASK_PRESETS.items() for name in names
                  if task not in ("mqar", "lm")}
PRESETS = ("default", "quick", "recall-vs-state", "lm", "lm-quick", "ptb-mixers", "ptb-30min", "channels",
           "residuals", *TASK_OF_PRESET)
# the later mixers, compared on PTB beside the lm preset's three
PTB_MIXERS = ["attn", "gated_attn", "gla", "hgrn", "flowformer", "kernel_rpe", "combiner", "lmu", "atlas",
              "tokenformer", "mossformer", "fsmn", "hornet"]


def preset(name: str) -> CompareGrid:
    """``default``: the main job (under 10 minutes on 2 CPU cores); ``quick``: a seconds-long end-to-end check;
    ``recall-vs-state``: Zoology's recall-vs-state picture, every causal mixer at three widths on one length, to
    be read as accuracy against state size (a long experiment: hours on a CPU). ``lm``: PTB word-level perplexity of
    attn, gated_attn and gla at d_model 128, parameter-matched, 2 seeds (6 runs of 1,500 steps); ``lm-quick``:
    the same protocol on a slice, in seconds. ``ptb-mixers``: the lm preset's model size (d_model 128, 4 layers of
    mixer + SwiGLU, parameter-matched) for attn, gated_attn, gla and the later mixers (``PTB_MIXERS``), 2 seeds of
    500 steps of batch 16 x 128 (a sixth of lm's tokens: about an hour for the grid). ``ptb-30min``: the best PTB
    model each of attn, gated_attn and gla trains in 30 minutes (steps measured per mixer), d_model 256, dropout
    0.2, 3 seeds: 4.5 hours in all.
    ``channels``: every registered channel mixer in attention blocks on PTB, d_model 128, matched to SwiGLU on the
    parameters one token uses, 2 seeds of 500 steps of batch 16 x 128 (``chain``: the chain FFN with 4 chains in
    ordinary attention blocks; the whole Chain-of-Model is ``model.chains``); ``residuals``: every residual connection
    likewise (not parameter-matched: GTrXL's gates add up to 12 d_model^2 per block, more than a SwiGLU of this
    width holds, so the table gives each model's parameters). ``listops``, ``lra-text``, ``pathfinder``,
    ``lra-image``, ``selective-copying``, ``induction-heads``, ``forecast`` (and each with ``-quick``): the other
    tasks' grids (``gatelab.task_grids``), 2 seeds of a few minutes each per mixer on a CPU."""
    if name == "default":
        return CompareGrid(mixers=["attn", "gla"], seq_lens=[64, 128, 256], d_models=[64], seeds=3,
                           lrs=[1e-2], base=_mqar_base(steps=300, train_examples=20000))
    if name == "quick":
        base = _mqar_base(steps=20, train_examples=256, batch_size=16, eval_every=10)
        base.mqar.test_examples = 64
        base.mqar.vocab_size, base.mqar.seq_lens = 64, [16]   # a valid base: the vocabulary must exceed the length
        return CompareGrid(mixers=["attn", "gla"], seq_lens=[16, 32], d_models=[16], seeds=1, lrs=[3e-3], base=base)
    if name == "recall-vs-state":
        return CompareGrid(mixers=decoder_mixers(), seq_lens=[128], d_models=[32, 64, 128], seeds=2, lrs=[3e-3, 1e-2],
                           base=_mqar_base(steps=600, train_examples=20000))
    if name == "lm":
        base = _lm_base("ptb", steps=1500, batch_size=32, eval_every=250)
        return CompareGrid(mixers=["attn", "gated_attn", "gla"], seq_lens=[128], d_models=[128], seeds=2,
                           lrs=[3e-3], base=base, match_params=True)
    if name == "ptb-mixers":
        base = _lm_base("ptb", steps=500, batch_size=16, eval_every=250)
        return CompareGrid(mixers=list(PTB_MIXERS), seq_lens=[128], d_models=[128], seeds=2, lrs=[3e-3], base=base,
                           match_params=True)
    if name == "ptb-30min":
        base = _lm_base("ptb", steps=1500, batch_size=32, eval_every=300)   # steps: set by the budget
        base.model.d_model, base.model.dropout, base.optim.lr = 256, 0.2, 2e-3
        base.checkpoint_every = 100   # a 4.5-hour sweep: an interrupted run resumes from its last checkpoint
        return CompareGrid(mixers=["attn", "gated_attn", "gla"], seq_lens=[128], d_models=[256], seeds=3,
                           lrs=[2e-3], base=base, match_params=True, budget_minutes=30)
    if name in ("channels", "residuals"):
        base = _lm_base("ptb", steps=500, batch_size=16, eval_every=250)
        if name == "channels":
            base.model.channel_options = {"chain": {"n_chains": 4}}   # the FFN's own chains (attention stays whole)
            channels = ["swiglu", *(k for k in CHANNEL_MIXERS.names() if k != "swiglu")]
            return CompareGrid(mixers=["attn"], channels=channels, seq_lens=[128], d_models=[128], seeds=2,
                               lrs=[2e-3], base=base, match_params=True)
        residuals = ["add", *(k for k in RESIDUALS.names() if k != "add")]
        return CompareGrid(mixers=["attn"], residuals=residuals, seq_lens=[128], d_models=[128], seeds=2, lrs=[2e-3],
                           base=base)
    if name in TASK_OF_PRESET:
        mixers, T, base, seeds = task_grid(TASK_OF_PRESET[name], quick=name.endswith("-quick"))
        return CompareGrid(mixers=mixers, seq_lens=[T], d_models=[base.model.d_model], seeds=seeds,
                           lrs=[base.optim.lr], base=base)
    if name == "lm-quick":
        base = _lm_base("ptb", steps=20, batch_size=8, eval_every=10)
        base.lm.eval_tokens = 2048
        return CompareGrid(mixers=["attn", "gla"], seq_lens=[32], d_models=[32], seeds=1, lrs=[1e-2], base=base,
                           match_params=True)
    raise ValueError(f"unknown compare preset {name!r}; choose one of: {', '.join(PRESETS)}")
