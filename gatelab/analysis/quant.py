"""Simulated post-training quantization, as in Quantizable Transformers' W8A8 set-up (uniform affine,
per-tensor): weights symmetric with a min-max range; activations asymmetric with a static range from a running
min-max (momentum 0.9) over calibration batches. The weights of every linear layer are quantized except the output
head's, which stays in float with the embedding tied to it.

Which activations are quantized is the ``scope``:

- ``linear``: the input of every quantized linear layer.
- ``full`` (the paper's, its ``quantized_opt.py`` / ``quantized_bert.py``): in addition, the embedding output (the
  embedding sum: this model has no position embedding to add), the outputs of the projections ``q_proj k_proj
  v_proj o_proj`` and of the channel mixer's ``w2`` (the paper quantizes every linear output; where an activation
  or a product follows a linear layer, the paper quantizes after it, which is the next layer's input here), the
  attention scores before the mask, the attention probabilities, the attention output before any gate (the
  context), and both residual sums of every block. Softmax attention exposes its scores, probabilities and context
  through probes; other token mixers' internal states stay in float.

Every site is read and replaced through forward hooks on a copy of the model; no layer is edited.
"""
from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from .hooks import first_tensor

Scope = Literal["linear", "full"]
SCOPES: tuple[str, ...] = ("linear", "full")
OUTPUT_LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "w2")
OUTPUT_PROBES = ("score_probe", "attn_probe", "context_probe", "mixer_sum_probe", "channel_sum_probe")


def quantize_symmetric(w: torch.Tensor, bits: int) -> torch.Tensor:
    """Fake-quantize to the ``2^bits - 1`` symmetric levels ``k * scale``, ``|k| <= 2^(bits-1) - 1``,
    ``scale = max|w| / (2^(bits-1) - 1)``."""
    qmax = 2 ** (bits - 1) - 1
    scale = w.abs().max().clamp(min=1e-12) / qmax
    return (w / scale).round().clamp(-qmax, qmax) * scale


def quantize_asymmetric(x: torch.Tensor, lo: float, hi: float, bits: int) -> torch.Tensor:
    """Fake-quantize to ``2^bits`` levels over ``[lo, hi]`` (widened to contain 0, so 0 is exact):
    ``scale = (hi - lo) / (2^bits - 1)``, integer zero point ``round(-lo / scale)``."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    levels = 2 ** bits - 1
    scale = max(hi - lo, 1e-12) / levels
    zero = round(-lo / scale)
    return ((x / scale).round() + zero).clamp(0, levels).sub(zero) * scale


class RunningMinMax:
    """Activation range estimator: the first batch's min and max, then ``r = m * r + (1 - m) * batch``."""

    def __init__(self, momentum: float = 0.9):
        self.momentum, self.lo, self.hi = momentum, None, None

    def update(self, x: torch.Tensor) -> None:
        lo, hi = x.min().item(), x.max().item()
        if self.lo is None:
            self.lo, self.hi = lo, hi
        else:
            m = self.momentum
            self.lo, self.hi = m * self.lo + (1 - m) * lo, m * self.hi + (1 - m) * hi


@dataclass(frozen=True)
class Site:
    """One quantized activation: the ``input`` or the ``output`` of the module called ``module``."""

    module: str
    where: Literal["input", "output"]

    def __str__(self) -> str:
        return f"{self.module}:{self.where}"


def quant_sites(model: nn.Module, scope: Scope = "linear", skip: tuple[str, ...] = ("head",)) -> list[Site]:
    """The activations that ``quantized`` rounds in ``model`` for a ``scope`` (module docstring), in module order."""
    if scope not in SCOPES:
        raise ValueError(f"quantization scope {scope!r}: choose one of {', '.join(SCOPES)}")
    sites = []
    for name, module in model.named_modules():
        last = name.rsplit(".", 1)[-1]
        if isinstance(module, nn.Linear) and name not in skip:
            sites.append(Site(name, "input"))
            if scope == "full" and last in OUTPUT_LINEARS:
                sites.append(Site(name, "output"))
        elif scope == "full" and (isinstance(module, nn.Embedding) or last in OUTPUT_PROBES):
            sites.append(Site(name, "output"))
    return sites


class _Calibrated:
    """The per-site hooks of ``quantized``: record ranges while calibrating, then replace each site's tensor by its
    fake-quantized value. ``calls`` counts the replacements per site (tests read it)."""

    def __init__(self, sites: list[Site], a_bits: int):
        self.ranges = {s: RunningMinMax() for s in sites}
        self.calls = {s: 0 for s in sites}
        self.a_bits, self.calibrating = a_bits, True

    def apply(self, site: Site, x: torch.Tensor) -> torch.Tensor | None:
        r = self.ranges[site]
        if self.calibrating:
            r.update(x)
            return None
        self.calls[site] += 1
        return quantize_asymmetric(x, r.lo, r.hi, self.a_bits)

    def hook(self, site: Site) -> Callable:
        if site.where == "input":
            def pre_hook(module, args):
                q = self.apply(site, args[0])
                return None if q is None else (q, *args[1:])
            return pre_hook

        def hook(module, args, output):
            q = self.apply(site, first_tensor(output))
            if q is None:
                return None
            return (q, *output[1:]) if isinstance(output, (tuple, list)) else q
        return hook


@contextlib.contextmanager
def quantized(model: nn.Module, calibration: Iterable[torch.Tensor], w_bits: int = 8, a_bits: int = 8,
              skip: tuple[str, ...] = ("head",), scope: Scope = "linear") -> Iterator[nn.Module]:
    """A fake-quantized copy of ``model`` (the original is untouched): weights of every ``nn.Linear`` not named
    in ``skip`` rounded to ``w_bits``, and the activations of ``scope`` (``quant_sites``) to ``a_bits`` over
    ranges calibrated in float on the ``calibration`` input batches (one forward each). The copy carries the
    hooks' state as ``quant_state`` (ranges and call counts per ``Site``)."""
    q = copy.deepcopy(model).eval()
    sites = quant_sites(q, scope, skip)
    modules = dict(q.named_modules())
    state = _Calibrated(sites, a_bits)
    handles = [modules[s.module].register_forward_pre_hook(state.hook(s)) if s.where == "input"
               else modules[s.module].register_forward_hook(state.hook(s)) for s in sites]
    try:
        with torch.no_grad():
            for batch in calibration:
                q(batch)
            for name, m in modules.items():
                if isinstance(m, nn.Linear) and name not in skip:
                    m.weight.copy_(quantize_symmetric(m.weight, w_bits))
        state.calibrating = False
        q.quant_state = state
        yield q
    finally:
        for h in handles:
            h.remove()
