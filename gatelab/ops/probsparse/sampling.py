"""ProbSparse's counts and its key sampling: how many keys each query samples, how many queries are active, and
which keys, as a pure function of a seed and the positions (a counter-based hash, no generator state).

Informer (Zhou et al. 2021, zhouhaoyi/Informer2020 ``models/attn.py``, ``ProbAttention.forward``) uses
``U = c * ceil(ln L_K)`` sampled keys per query and ``u = c * ceil(ln L_Q)`` active queries, each clamped to the
length, and draws the samples with ``torch.randint(L_K, (L_Q, U))``: uniform, with replacement, one draw per query
shared by the batch and the heads. Here the draw for query position ``t``, sample ``j``, among ``n`` keys is
``floor(hash(seed, t, j) * n / 2^32)``: the same distribution, but reproducible from (seed, t, j, n) alone, so a
decoding step draws what the full forward drew at that position and a padded sequence draws what it would
unpadded.
"""
from __future__ import annotations

import torch

_MASK = 0xFFFFFFFF
_MUL = 0x45D9F3B  # < 2^27: products with 32-bit values stay below 2^63 in int64


def _ceil_log(n: torch.Tensor) -> torch.Tensor:
    """``ceil(ln n)`` for integer tensors ``n >= 1`` (0 at n = 1), as int64."""
    return torch.ceil(torch.log(n.to(torch.float64))).to(torch.int64)


def n_active(n: torch.Tensor, factor: int) -> torch.Tensor:
    """Informer's ``u = min(n, c * ceil(ln n))`` active queries among ``n`` (0 for n = 1); ``n`` int64 >= 1."""
    return torch.minimum(n, factor * _ceil_log(n))


def n_samples(n: torch.Tensor, factor: int) -> torch.Tensor:
    """Informer's ``U = min(n, c * ceil(ln n))`` sampled keys among ``n``, at least 1 (Informer's count is 0 at
    n = 1 and its max over no samples fails; one sample of the one key is the only choice)."""
    return torch.clamp(torch.minimum(n, factor * _ceil_log(n)), min=1)


def _mix(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash (two multiply-xorshift rounds) on int64 values in [0, 2^32)."""
    x = ((x >> 16) ^ x) * _MUL & _MASK
    x = ((x >> 16) ^ x) * _MUL & _MASK
    return (x >> 16) ^ x


def sample_keys(seed: int, positions: torch.Tensor, n_keys: torch.Tensor, n: int) -> torch.Tensor:
    """Key indices ``[..., P, n]``: sample ``j < n`` of the query at ``positions [P]`` (int64, absolute) drawn
    uniformly from ``[0, n_keys)``; ``n_keys`` (int64 >= 1) broadcasts against ``[P, 1]`` (``[P, 1]``: one count
    per query; ``[B, 1, 1]``: one per sequence, giving ``[B, P, n]``)."""
    j = torch.arange(n, device=positions.device, dtype=torch.int64)                       # (n,)
    h = _mix(_mix(_mix(torch.tensor(seed & _MASK, device=positions.device)) ^ positions)[:, None] ^ j)  # (P, n)
    return (h * n_keys) >> 32                                                             # (..., P, n) in [0, n_keys)
