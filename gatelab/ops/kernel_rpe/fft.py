"""Kernelized attention with a relative positional encoding, fast form: the causal Toeplitz products by FFT.

The weights ``e^{b_{i-j}}`` form a lower-triangular Toeplitz matrix applied to every channel of
``phi(k_j) [v_j, 1]`` (numerator and denominator at once). A single FFT of the whole sequence would let rounding
from later tokens reach earlier outputs (gradients of ~1e-17 across time), so the product is split exactly by
causality: diagonal blocks of ``block_size`` tokens as small dense Toeplitz matrices, then for each size s =
block, 2 block, ... the first half of every aligned 2s-block feeds the second half through one FFT of length 2s.
Every FFT holds only tokens before the ones it writes. O(T log^2 T) time, with M (V + 1) channels per head:
against the quadratic form's T (M + V) per query it pays off only at long sequences (on a CPU, M = V = 16, it
is about half the quadratic form's speed at T = 2048, forward and backward).
In float32 an FFT's rounding is relative to the largest weight among the lags it covers: about 1e-5 relative
RMS error at T=4096 for biases spread over e^{+-8}, about 3e-3 for a spread over e^{+-30}.

Legend: B batch, T time, H heads, M features, V value dim, P padded length, N blocks, S channels.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .._common import compute_dtype
from .checks import check_kernel_rpe_inputs
from .ref import lag_weights


def causal_toeplitz(weights: torch.Tensor, x: torch.Tensor, block_size: int) -> torch.Tensor:
    """``y_t = sum_{s<=t} weights[h, t-s] x_s`` for ``weights [H, T]`` and ``x [B, H, S, T]`` -> ``[B, H, S, T]``,
    exactly causal (see the module docstring)."""
    B, H, S, T = x.shape
    blocks = -(-T // block_size)
    P = block_size * (1 << (blocks - 1).bit_length())                               # block * 2^k >= T
    x, weights = F.pad(x, (0, P - T)), F.pad(weights, (0, P - T))                   # (B, H, S, P), (H, P)
    idx = torch.arange(block_size, device=x.device)
    lag = idx[:, None] - idx[None, :]                                               # (C, C)
    local = weights[:, lag.clamp(min=0)] * (lag >= 0)                               # (H, C, C) lower-triangular
    y = torch.einsum("hij,bhsnj->bhsni", local, x.view(B, H, S, P // block_size, block_size)).reshape(B, H, S, P)
    s = block_size
    while s < P:
        source = x.view(B, H, S, P // (2 * s), 2, s)[..., 0, :]                    # (B, H, S, N, s)
        kernel = torch.fft.rfft(weights[:, 1:2 * s], n=2 * s)                       # (H, s + 1): lags 1 .. 2s-1
        spectrum = torch.fft.rfft(source, n=2 * s) * kernel[None, :, None, None, :]
        far = torch.fft.irfft(spectrum, n=2 * s)[..., s - 1:2 * s - 1]             # (B, H, S, N, s)
        y = y + torch.stack([torch.zeros_like(far), far], -2).reshape(B, H, S, P)   # into the second halves
        s *= 2
    return y[..., :T]


def fft_kernel_rpe(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, bias: torch.Tensor,
                   block_size: int = 64) -> torch.Tensor:
    """Kernelized attention with RPE (Luo et al. 2021, arXiv 2106.12566) over a whole sequence: the arguments and
    result of ``quadratic_kernel_rpe`` with Tq = Tk; ``block_size`` (a power of two) is the diagonal block done
    densely and the smallest FFT half-length. Runs in float32 (float64 for float64 inputs); the weights are
    ``lag_weights(bias)``, ``e^{b - max b}`` per head (the shift cancels in the ratio), so none exceeds 1."""
    B, Tq, H, M, T, V = check_kernel_rpe_inputs("fft_kernel_rpe", q, k, v, bias, block_size)
    if Tq != T:
        raise ValueError(f"fft_kernel_rpe: q and k must cover the same tokens (got {Tq} and {T}); queries after a "
                         "cache use quadratic_kernel_rpe")
    if T == 0:
        return v.new_zeros(B, 0, H, V, dtype=q.dtype)
    dtype, ct = q.dtype, compute_dtype(q)
    q, k, v, bias = (x.to(ct) for x in (q, k, v, bias))
    weights = lag_weights(bias)                                                     # (H, T)
    values = torch.cat([v, v.new_ones(B, T, H, 1)], -1)                             # (B, T, H, V + 1)
    x = torch.einsum("bthm,bthv->bhmvt", k, values).reshape(B, H, M * (V + 1), T)   # (B, H, S, T)
    y = causal_toeplitz(weights, x, block_size).view(B, H, M, V + 1, T)
    read = torch.einsum("bthm,bhmvt->bthv", q, y)                                   # (B, T, H, V + 1)
    return (read[..., :V] / read[..., V:]).to(dtype)
