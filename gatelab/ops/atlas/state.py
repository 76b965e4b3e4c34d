"""The state of the ATLAS ops and the checks of their inputs."""
from __future__ import annotations

from typing import NamedTuple

import torch

from .._common import check_sign


class AtlasState(NamedTuple):
    """What ATLAS carries from one token to the next, per sequence and head.

    w1 ``[B, H, F, D]``, w2 ``[B, H, D, V]``: the memory. s1, s2: its momentum (same shapes). start1, start2: the
    memory at the start of the current chunk, where the chunked rule evaluates its gradients (None when
    ``chunk_size == 1``: every token is a chunk). window_k ``[B, H, c - 1, F]``, window_v ``[B, H, c - 1, V]``,
    window_gamma ``[B, H, c - 1]``: the previous ``c - 1`` tokens of the sliding window (gamma 0 before the first
    token, so those slots add nothing). offset: tokens seen, which places the chunk boundaries."""

    w1: torch.Tensor
    w2: torch.Tensor
    s1: torch.Tensor
    s2: torch.Tensor
    start1: torch.Tensor | None
    start2: torch.Tensor | None
    window_k: torch.Tensor
    window_v: torch.Tensor
    window_gamma: torch.Tensor
    offset: int


def initial(w1: torch.Tensor, w2: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int, chunk_size: int
            ) -> AtlasState:
    """The state before any token: the memory ``w1 [H, F, D]``, ``w2 [H, D, V]`` (the layer's learned initial
    weights) in every sequence of the batch, zero momentum and an empty window."""
    B, _, H, F = k.shape
    w1, w2 = w1.to(k.dtype).expand(B, *w1.shape), w2.to(k.dtype).expand(B, *w2.shape)  # (B, H, F, D), (B, H, D, V)
    start = (w1, w2) if chunk_size > 1 else (None, None)
    return AtlasState(w1, w2, torch.zeros_like(w1), torch.zeros_like(w2), *start,
                      k.new_zeros(B, H, window - 1, F), v.new_zeros(B, H, window - 1, v.shape[-1]),
                      k.new_zeros(B, H, window - 1), 0)


def check_inputs(name: str, q, k, v, g, beta, g_momentum, gamma, w1, w2, window: int, ns_steps: int, chunk_size: int,
                 residual: bool) -> None:
    """Shapes and domains of the ATLAS ops' inputs, with errors that name the argument."""
    if q.dim() != 4 or q.shape != k.shape or v.dim() != 4 or v.shape[:3] != q.shape[:3]:
        raise ValueError(f"{name}: q, k must be [B, T, H, F] and v [B, T, H, V]; got {tuple(q.shape)}, "
                         f"{tuple(k.shape)}, {tuple(v.shape)}")
    for arg, x in (("g", g), ("beta", beta), ("g_momentum", g_momentum), ("gamma", gamma)):
        if x.shape != q.shape[:3]:
            raise ValueError(f"{name}: {arg} must be [B, T, H] = {tuple(q.shape[:3])}; got {tuple(x.shape)}")
    H, F, V = q.shape[2], q.shape[3], v.shape[3]
    if w1.dim() != 3 or w1.shape[:2] != (H, F) or w2.dim() != 3 or w2.shape[0] != H or w2.shape[1:] != (
            w1.shape[2], V):
        raise ValueError(f"{name}: w1 must be [H, F, D] = [{H}, {F}, D] and w2 [H, D, {V}]; got {tuple(w1.shape)}, "
                         f"{tuple(w2.shape)}")
    if residual and F < V:
        raise ValueError(f"{name}: the residual memory passes the first V={V} features through; F={F} is fewer")
    for arg, value, low in (("window", window, 1), ("ns_steps", ns_steps, 0), ("chunk_size", chunk_size, 1)):
        if value < low:
            raise ValueError(f"{name}: {arg} must be an integer >= {low}; got {value}")
    check_sign(name, "g", g, nonpositive=True, what="log decays (<= 0)")
    check_sign(name, "g_momentum", g_momentum, nonpositive=True, what="log momentum decays (<= 0)")
    check_sign(name, "beta", beta, nonpositive=False, what="learning rates (>= 0)")
    check_sign(name, "gamma", gamma, nonpositive=False, what="token weights (>= 0)")
