"""Simulated post-training quantization, as in Quantizable Transformers' W8A8 set-up (uniform affine,
per-tensor): weights symmetric with a min-max range; activations asymmetric with a static range from a running
min-max (momentum 0.9) over calibration batches. Every linear layer is quantized (its weight and its input) except
the output head, which stays in float; the embedding, tied to the head, stays in float with it.
"""
from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterable, Iterator

import torch
from torch import nn


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


@contextlib.contextmanager
def quantized(model: nn.Module, calibration: Iterable[torch.Tensor], w_bits: int = 8, a_bits: int = 8,
              skip: tuple[str, ...] = ("head",)) -> Iterator[nn.Module]:
    """A fake-quantized copy of ``model`` (the original is untouched): weights of every ``nn.Linear`` not named
    in ``skip`` rounded to ``w_bits``, and their inputs to ``a_bits`` over ranges calibrated on the
    ``calibration`` input batches (one forward each)."""
    q = copy.deepcopy(model).eval()
    linears = {n: m for n, m in q.named_modules() if isinstance(m, nn.Linear) and n not in skip}
    ranges = {n: RunningMinMax() for n in linears}
    calibrating = True

    def pre_hook(name):
        def hook(module, args):
            if calibrating:
                ranges[name].update(args[0])
                return None
            r = ranges[name]
            return (quantize_asymmetric(args[0], r.lo, r.hi, a_bits),)
        return hook

    handles = [m.register_forward_pre_hook(pre_hook(n)) for n, m in linears.items()]
    try:
        with torch.no_grad():
            for batch in calibration:
                q(batch)
            for m in linears.values():
                m.weight.copy_(quantize_symmetric(m.weight, w_bits))
        calibrating = False
        yield q
    finally:
        for h in handles:
            h.remove()
