"""Simulated post-training quantization, as in Quantizable Transformers' W8A8 set-up (uniform affine,
per-tensor): weights symmetric with a min-max range or the range of least squared error (their validation
scripts' choice); activations asymmetric with a static range from a running min-max (momentum 0.9) over
calibration batches, optionally between percentiles (their OPT validation uses 99.999). The weights of every
linear layer are quantized except the output head's, which stays in float with the embedding tied to it (the
paper's ``fp32_head`` set-up for OPT).

Which tensors are quantized is the ``scope``:

- ``linear``: the weights and the input of every linear layer but the head.
- ``full`` (the paper's, its ``quantized_opt.py`` / ``quantized_bert.py``): in addition, the embedding (its lookups
  read 8-bit weights, and its output, the embedding sum, is an activation: this model has no position embedding
  to add), the outputs of the projections ``q_proj k_proj v_proj o_proj`` and of the channel mixer's ``w2`` (the
  paper quantizes every linear output; where an activation or a product follows a linear layer, the paper
  quantizes after it, which is the next layer's input here), the attention scores before the mask, the attention
  probabilities, the attention output before any gate (the context), both residual sums of every block, and the
  final norm's output (the head's input). Softmax attention exposes its scores, probabilities and context through
  probes; other token mixers' internal states stay in float. One difference remains: a gated context is
  quantized again as ``o_proj``'s input, where the paper passes it on in float.

Every site is read and replaced through forward hooks on a copy of the model; no layer is edited.
"""
from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .hooks import first_tensor

Scope = Literal["linear", "full"]
SCOPES: tuple[str, ...] = ("linear", "full")
OUTPUT_LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "w2")
OUTPUT_PROBES = ("score_probe", "attn_probe", "context_probe", "mixer_sum_probe", "channel_sum_probe")


def quantize_symmetric(w: torch.Tensor, bits: int, limit: float | None = None) -> torch.Tensor:
    """Fake-quantize to the ``2^bits - 1`` symmetric levels ``k * scale``, ``|k| <= 2^(bits-1) - 1``,
    ``scale = limit / (2^(bits-1) - 1)``; ``limit`` defaults to ``max|w|`` (min-max)."""
    qmax = 2 ** (bits - 1) - 1
    limit = w.abs().max().item() if limit is None else limit
    scale = max(limit, 1e-12) / qmax
    return (w / scale).round().clamp(-qmax, qmax) * scale


def mse_limit(w: torch.Tensor, bits: int, candidates: int = 100, margin: float = 0.5) -> float:
    """The symmetric range that minimises the squared rounding error of ``w``: a grid of ``candidates`` limits
    up to ``max|w| + margin``, as the paper's weight range search (its ``MSE_Estimator``, grid, 100 candidates,
    margin 0.5)."""
    step = (w.abs().max().item() + margin) / candidates
    errors = [(quantize_symmetric(w, bits, step * i) - w).pow(2).sum().item() for i in range(1, candidates + 1)]
    return step * (1 + min(range(candidates), key=errors.__getitem__))


def quantize_asymmetric(x: torch.Tensor, lo: float, hi: float, bits: int) -> torch.Tensor:
    """Fake-quantize to ``2^bits`` levels over ``[lo, hi]`` (widened to contain 0, so 0 is exact):
    ``scale = (hi - lo) / (2^bits - 1)``, integer zero point ``round(-lo / scale)``."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    levels = 2 ** bits - 1
    scale = max(hi - lo, 1e-12) / levels
    zero = round(-lo / scale)
    return ((x / scale).round() + zero).clamp(0, levels).sub(zero) * scale


def percentile(flat: torch.Tensor, q: float) -> float:
    """The ``q``-th percentile (0..100) of a 1-D tensor, interpolated linearly between the order statistics
    ``i = floor(q / 100 * (n - 1))`` and ``i + 1``, which ``topk`` finds from the nearer end (a range percentile
    such as 99.999 needs only a few values from each end)."""
    n = flat.numel()
    pos = q / 100 * (n - 1)
    i = int(pos)
    j = min(i + 1, n - 1)
    if i < n - 1 - i:
        low = flat.topk(j + 1, largest=False).values                   # ascending: order statistics 0..j
        below, above = low[i].item(), low[j].item()
    else:
        high = flat.topk(n - i).values                                  # descending: order statistics n-1..i
        below, above = high[n - 1 - i].item(), high[n - 1 - j].item()
    return below + (pos - i) * (above - below)


class RunningMinMax:
    """Activation range estimator: the first batch's min and max, then ``r = m * r + (1 - m) * batch``. With
    ``percentile`` p, a batch's range is its ``100 - p`` and ``p`` percentiles instead (linear interpolation, as
    ``numpy.percentile``, which the paper's estimator calls)."""

    def __init__(self, momentum: float = 0.9, percentile: float | None = None):
        if percentile is not None and not 50 < percentile <= 100:
            raise ValueError(f"percentile must lie in (50, 100]; got {percentile}")
        self.momentum, self.percentile, self.lo, self.hi = momentum, percentile, None, None

    def batch_range(self, x: torch.Tensor) -> tuple[float, float]:
        if self.percentile is None:
            return x.min().item(), x.max().item()
        flat = x.detach().flatten()
        return percentile(flat, 100 - self.percentile), percentile(flat, self.percentile)

    def update(self, x: torch.Tensor) -> None:
        lo, hi = self.batch_range(x)
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


def quant_sites(model: nn.Module, scope: Scope = "linear", skip: tuple[str, ...] = ("head",),
                linears: tuple[type[nn.Module], ...] = (nn.Linear,)) -> list[Site]:
    """The activations that ``quantized`` rounds in ``model`` for a ``scope`` (module docstring), in module order.
    The linear layers (modules of the types ``linears``) in ``skip`` keep float weights; their input is an
    activation of the full scope only."""
    if scope not in SCOPES:
        raise ValueError(f"quantization scope {scope!r}: choose one of {', '.join(SCOPES)}")
    sites = []
    for name, module in model.named_modules():
        last = name.rsplit(".", 1)[-1]
        if isinstance(module, linears) and (scope == "full" or name not in skip):
            sites.append(Site(name, "input"))
            if scope == "full" and last in OUTPUT_LINEARS:
                sites.append(Site(name, "output"))
        elif scope == "full" and (isinstance(module, nn.Embedding) or last in OUTPUT_PROBES):
            sites.append(Site(name, "output"))
    return sites


class _Calibrated:
    """The per-site hooks of ``quantized``: record ranges while calibrating, then replace each site's tensor by its
    fake-quantized value. ``calls`` counts the replacements per site (tests read it); ``tables`` holds the
    quantized weights that embedding lookups read once calibrated."""

    def __init__(self, sites: list[Site], a_bits: int, percentile: float | None):
        self.ranges = {s: RunningMinMax(percentile=percentile) for s in sites}
        self.calls = {s: 0 for s in sites}
        self.tables: dict[str, torch.Tensor] = {}
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
            if site.module in self.tables and not self.calibrating:
                output = F.embedding(args[0], self.tables[site.module], module.padding_idx)
            q = self.apply(site, first_tensor(output))
            if q is None:
                return None
            return (q, *output[1:]) if isinstance(output, (tuple, list)) else q
        return hook


@contextlib.contextmanager
def quantized(model: nn.Module, calibration: Iterable[torch.Tensor], w_bits: int = 8, a_bits: int = 8,
              skip: tuple[str, ...] = ("head",), scope: Scope = "linear", percentile: float | None = None,
              weight_range: Literal["minmax", "mse"] = "minmax",
              linears: tuple[type[nn.Module], ...] = (nn.Linear,)) -> Iterator[nn.Module]:
    """A fake-quantized copy of ``model`` (the original is untouched): weights of every linear layer (a module of
    the types ``linears``: ``nn.Linear``, and e.g. GPT-2's ``Conv1D``, whose per-tensor range is the same) not named
    in ``skip`` (and, in the full scope, the embeddings' lookups) rounded to ``w_bits`` over their min-max range or
    the range of least squared error (``weight_range``, ``mse_limit``), and the activations of ``scope``
    (``quant_sites``) to ``a_bits`` over ranges calibrated in float on the ``calibration`` input batches (one
    forward each; ``percentile``: see ``RunningMinMax``). The copy carries the hooks' state as ``quant_state``
    (ranges and call counts per ``Site``)."""
    if weight_range not in ("minmax", "mse"):
        raise ValueError(f"weight_range {weight_range!r}: choose minmax or mse")

    def rounded(w: torch.Tensor) -> torch.Tensor:
        return quantize_symmetric(w, w_bits, mse_limit(w, w_bits) if weight_range == "mse" else None)

    q = copy.deepcopy(model).eval()
    sites = quant_sites(q, scope, skip, linears)
    modules = dict(q.named_modules())
    state = _Calibrated(sites, a_bits, percentile)
    handles = [modules[s.module].register_forward_pre_hook(state.hook(s)) if s.where == "input"
               else modules[s.module].register_forward_hook(state.hook(s)) for s in sites]
    try:
        with torch.no_grad():
            for batch in calibration:
                q(batch)
            for name, m in modules.items():
                if isinstance(m, linears) and name not in skip:
                    m.weight.copy_(rounded(m.weight))
                elif isinstance(m, nn.Embedding) and Site(name, "output") in state.ranges:
                    state.tables[name] = rounded(m.weight)   # the tied head keeps float weights
        state.calibrating = False
        q.quant_state = state
        yield q
    finally:
        for h in handles:
            h.remove()
