"""Shared test helpers: relative-RMS comparison, op inputs with a controllable gate strength, values outside
a config range."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def rel_rms(ref: torch.Tensor, out: torch.Tensor) -> float:
    """``rms(out - ref) / rms(ref)``: the error measure for float32 and kernels (DESIGN §4)."""
    ref, out = ref.double(), out.double()
    return ((out - ref).pow(2).mean().sqrt() / ref.pow(2).mean().sqrt().clamp(min=1e-30)).item()


def assert_close(name: str, ref: torch.Tensor, out: torch.Tensor, ratio: float) -> None:
    assert torch.isfinite(out).all(), f"{name}: non-finite values"
    err = rel_rms(ref, out)
    assert err <= ratio, f"{name}: relative RMS error {err:.3e} > {ratio:.1e}"


def gla_inputs(B, T, H, K, V, strength=1.0, dtype=torch.float64, initial_state=False, seed=0):
    """q, k ``[B,T,H,K]``, v ``[B,T,H,V]``, log gates ``logsigmoid(x) / strength`` and an optional state."""
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(B, T, H, K, generator=gen, dtype=dtype)
    k = torch.randn(B, T, H, K, generator=gen, dtype=dtype)
    v = torch.randn(B, T, H, V, generator=gen, dtype=dtype)
    g = F.logsigmoid(torch.randn(B, T, H, K, generator=gen, dtype=dtype)) / strength
    h0 = torch.randn(B, H, K, V, generator=gen, dtype=dtype) if initial_state else None
    return q, k, v, g, h0


def write_corpus(folder, text: str):
    """A local corpus folder whose train, valid and test files all hold ``text``."""
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "valid", "test"):
        (folder / f"{split}.txt").write_text(text)
    return folder


def values_outside(interval: str, integer: bool) -> list:
    """Numbers just outside ``interval`` (``"[1, inf)"``, ``"(0, 1]"``, ...): an open end itself (for an integer
    field only a finite one), the next integer or float beyond a closed finite end, and, for floats, NaN."""
    low, high = (float(x) for x in interval[1:-1].split(","))
    out = []
    for end, closed, away in ((low, interval[0] == "[", -math.inf), (high, interval[-1] == "]", math.inf)):
        if not closed and (math.isfinite(end) or not integer):
            out.append(end)
        elif closed and math.isfinite(end):
            out.append(end + math.copysign(1, away) if integer else math.nextafter(end, away))
    return [int(v) for v in out] if integer else [*out, math.nan]
