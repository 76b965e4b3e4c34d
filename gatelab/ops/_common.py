"""Helpers shared by the ops: input checks, compute dtype, padding to whole chunks."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """Recurrences and cumulative log gates run in float32, or float64 when the inputs are float64."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def check_qkv(name: str, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[int, int, int, int, int]:
    """Validate ``[B, T, H, K]`` q/k and ``[B, T, H, V]`` v; return ``(B, T, H, K, V)``."""
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        shapes = ", ".join(str(tuple(x.shape)) for x in (q, k, v))
        raise ValueError(f"{name}: q, k, v must be [B, T, H, D]; got {shapes}")
    if q.shape != k.shape:
        raise ValueError(f"{name}: q and k must have the same shape; got {tuple(q.shape)} and {tuple(k.shape)}")
    if v.shape[:3] != q.shape[:3]:
        raise ValueError(f"{name}: v must be [B, T, H, V] with q's B, T, H; got q {tuple(q.shape)}, v {tuple(v.shape)}")
    B, T, H, K = q.shape
    return B, T, H, K, v.shape[-1]


def check_recurrent_inputs(name: str, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor | None,
                           initial_state: torch.Tensor | None, chunk_size: int, gate: str, values: bool = True
                           ) -> tuple[int, int, int, int, int]:
    """Validate the inputs of a gated recurrent op (DESIGN §3 signature); return ``(B, T, H, K, V)``.

    ``gate`` says what g must be: ``"channel"`` (``[B, T, H, K]``) or ``"head"`` (``[B, T, H]``, or None).
    ``values``: also check that g holds log gates (<= 0), which reads the tensor (a device sync on a GPU).
    """
    B, T, H, K, V = check_qkv(name, q, k, v)
    expected = {"channel": ("[B, T, H, K]", q.shape), "head": ("[B, T, H]", q.shape[:3])}[gate]
    if (g is None and gate == "channel") or (g is not None and g.shape != expected[1]):
        got = None if g is None else tuple(g.shape)
        raise ValueError(f"{name}: g must be per {gate}, {expected[0]} = {tuple(expected[1])}; got {got}")
    state = None if initial_state is None else tuple(initial_state.shape)
    if state is not None and state != (B, H, K, V):
        raise ValueError(f"{name}: initial_state must be [B, H, K, V] = {(B, H, K, V)}; got {state}")
    if chunk_size < 1:
        raise ValueError(f"{name}: chunk_size must be a positive integer; got {chunk_size}")
    if values:
        check_sign(name, "g", g, nonpositive=True, what="log gates (e.g. F.logsigmoid(x)), so <= 0")
    return B, T, H, K, V


def check_sign(name: str, arg: str, x: torch.Tensor | None, *, nonpositive: bool, what: str) -> None:
    """Raise ValueError naming ``arg`` of op ``name`` when tensor ``x`` has a value above 0 (``nonpositive``) or
    below 0, beyond rounding (16 ulps of 1 in x's dtype: a log gate computed as ``log(lb + (1 - lb) f)`` may round
    just above 0). A positive log gate is a growth factor that overflows the chunked forms (float32 ``g = +3`` gives
    NaN). One reduction over the tensor (a device sync on a GPU)."""
    if x is None or x.numel() == 0:
        return
    slack = 16 * torch.finfo(x.dtype).eps if x.is_floating_point() else 0
    worst = x.max() if nonpositive else x.min()
    if (worst > slack) if nonpositive else (worst < -slack):
        raise ValueError(f"{name}: {arg} must be {what}; its {'largest' if nonpositive else 'smallest'} value is "
                         f"{worst.item():.4g}")


def pad_time(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Zero-pad dim 1 (time) of a ``[B, T, ...]`` tensor up to a multiple of ``multiple``."""
    pad = (-x.shape[1]) % multiple
    if pad == 0:
        return x
    return F.pad(x, (0, 0) * (x.dim() - 2) + (0, pad))
