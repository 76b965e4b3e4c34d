"""One pass over evaluation windows with hooks: perplexity, F-Attn, M-Act, gate scores and outliers together."""
from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..config import ConfigError
from ..models.lm import DecoderLM
from ..train.tasks import perplexity
from .hooks import first_tensor, hooked
from .metrics import ActivationMeter, GateMeter, OutlierMeter, SinkMeter

ATTENTION_INTERNALS = ("score_probe", "context_probe")   # probes of softmax attention that are not gates


@dataclass
class ModuleNames:
    """Where the measurements hook: attention-probability probes, gate probes, block outputs, channel-mixer
    (FFN) outputs, and token-mixer output projections. ``probabilities`` reads the attention probabilities
    ``[B, H, Tq, Tk]`` from the output of an ``attention`` module (a probe's output is the tensor itself)."""

    attention: list[str] = field(default_factory=list)
    gates: list[str] = field(default_factory=list)
    blocks: list[str] = field(default_factory=list)
    ffn: list[str] = field(default_factory=list)
    out_proj: list[str] = field(default_factory=list)
    probabilities: Callable[[Any], torch.Tensor] = first_tensor

    @classmethod
    def of(cls, model: DecoderLM) -> ModuleNames:
        names = cls()
        for i, block in enumerate(model.blocks):
            prefix = f"blocks.{i}"
            names.blocks.append(prefix)
            if block.channel is not None:
                names.ffn.append(f"{prefix}.channel")
            if hasattr(block.mixer, "o_proj"):
                names.out_proj.append(f"{prefix}.mixer.o_proj")
            for name, _ in block.mixer.named_modules():
                if name.endswith("attn_probe"):
                    names.attention.append(f"{prefix}.mixer.{name}")
                elif name.endswith("probe") and not name.endswith(ATTENTION_INTERNALS):
                    names.gates.append(f"{prefix}.mixer.{name}")
        return names


def _layer(name: str) -> int:
    """The layer index in a module name: its first numeric component (``blocks.3.mixer`` and
    ``model.layers.3.self_attn`` are both layer 3)."""
    return next(int(part) for part in name.split(".") if part.isdigit())


def _by_kind(per_probe: dict[str, float]) -> dict[str, float]:
    """Mean over layers of each kind of gate (``gate.probe`` for attention gates, ``forget_gate_probe``, ...)."""
    kinds: dict[str, list[float]] = {}
    for name, value in per_probe.items():
        kinds.setdefault(name.split(".mixer.", 1)[1], []).append(value)
    return {k: sum(v) / len(v) for k, v in kinds.items()}


def measure(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 16,
            keep_gate_values: bool = True, names: ModuleNames | None = None) -> dict[str, Any]:
    """Every per-model measurement on the windows ``x, y`` (see ``metrics``), as plain numbers, plus gate-score
    samples for histograms under ``"gate_values"`` when asked. ``names``: where to hook (default: those of a
    ``DecoderLM``, ``ModuleNames.of``; ``gatelab.analysis.hf_modules`` finds them in a Hugging Face model). A looped
    DecoderLM (``model.loop > 1``) is refused: its blocks run several times per token, and the per-layer figures
    would merge the applications."""
    if names is None:
        if model.config.loop > 1:
            raise ConfigError(f"model.loop={model.config.loop}: the analysis measures each layer once per token, "
                              "and a looped model applies each block several times; analyse a model with loop=1")
        names = ModuleNames.of(model)
    model.eval()
    sink, acts, gates, outliers = SinkMeter(), ActivationMeter(), GateMeter(), OutlierMeter()
    with contextlib.ExitStack() as stack:
        stack.enter_context(hooked(model, names.attention, sink, names.probabilities))
        stack.enter_context(hooked(model, names.gates, gates))
        stack.enter_context(hooked(model, names.blocks, acts))
        stack.enter_context(hooked(model, names.blocks + names.ffn + names.out_proj, outliers))
        ppl = perplexity(model, x, y, batch_size)
    f_attn, m_act, out = sink.result(), acts.result(), outliers.result()
    gate_means = gates.result()
    result: dict[str, Any] = {
        "ppl": ppl,
        "f_attn": {"per_layer": {_layer(n): v for n, v in f_attn.items()},
                   "mean": sum(f_attn.values()) / len(f_attn) if f_attn else None},
        "m_act": {"per_layer": {_layer(n): v for n, v in m_act.items()},
                  "mean": sum(v["max"] for v in m_act.values()) / len(m_act),
                  "mean_max_over_median": sum(v["max_over_median"] for v in m_act.values()) / len(m_act)},
        "gate_score": {"per_probe": gate_means, "per_kind": _by_kind(gate_means)},
        "outliers": {"per_module": out,
                     "max_inf_norm": max(v["inf_norm"] for v in out.values()),
                     "max_inf_over_median": max(v["inf_over_median"] for v in out.values()),
                     "avg_kurtosis": sum(v["kurtosis"] for v in out.values()) / len(out),
                     "max_kurtosis": max(v["kurtosis"] for v in out.values())},
    }
    if keep_gate_values:
        result["gate_values"] = {n: gates.values(n) for n in gate_means}
    return result
