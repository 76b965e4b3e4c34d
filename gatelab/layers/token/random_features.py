"""Performer's positive random features (FAVOR+; Choromanski et al. 2021, arXiv 2009.14794): the softmax kernel
``exp(x . y)`` as the expectation of ``phi(x) . phi(y)``."""
from __future__ import annotations

import math

import torch


def gaussian_orthogonal(n_features: int, dim: int, orthogonal: bool = True,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """Random projection ``[n_features, dim]``: rows ``w ~ N(0, I)``, or (``orthogonal``) blocks of ``dim``
    orthonormal rows rescaled by the norms of independent Gaussian rows (Performer's orthogonal features, its
    ``scaling=0``), which keeps each row's distribution and lowers the estimator's variance. The orthonormal
    blocks are Haar-distributed: Q of a Gaussian matrix's QR with its columns' signs set by R's diagonal (without
    that, the sign convention of QR skews the rows and the kernel estimate is biased)."""
    if not orthogonal:
        return torch.randn(n_features, dim, generator=generator)
    gaussian = torch.randn(-(-n_features // dim), dim, dim, generator=generator)     # (blocks, dim, dim)
    q, r = torch.linalg.qr(gaussian)
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1))[:, None, :]             # Haar: fix the column signs
    rows = q.transpose(-1, -2).reshape(-1, dim)[:n_features]                        # (n_features, dim) orthonormal
    norms = torch.randn(n_features, dim, generator=generator).norm(dim=-1, keepdim=True)   # (n_features, 1)
    return rows * norms


MAX_EXPONENT = 60.0


def positive_features(x: torch.Tensor, projection: torch.Tensor, eps: float, is_query: bool) -> torch.Tensor:
    """``phi(x) = (exp(min(w_r . x - |x|^2 / 2 - s, 60)) + eps) / sqrt(m)`` for ``x [B, T, H, D]`` and
    ``projection [m, D]`` -> ``[B, T, H, m]``. Queries subtract their own largest exponent ``s`` (a per-query
    factor that cancels in attention's ratio, up to eps); keys subtract nothing: Performer's key shift is the
    largest exponent over the whole sequence, which would let later tokens change earlier outputs. A key's
    exponent is at most ``|w_r|^2 / 2`` (at ``x = w_r``), which passes float32's limit (about 88) for rows with
    ``|w_r|^2 > 177``, likely among many features at head_dim 128 or more; so the exponent is capped at
    ``MAX_EXPONENT`` (60: ``e^60 ~ 1e26`` leaves a factor 1e12 for the sums over keys and features). A capped
    feature gets no gradient."""
    dash = torch.einsum("bthd,md->bthm", x, projection.to(x.dtype))                 # (B, T, H, m)
    dash = dash - x.square().sum(-1, keepdim=True) / 2
    if is_query:
        dash = dash - dash.amax(-1, keepdim=True).detach()
    return (dash.clamp(max=MAX_EXPONENT).exp() + eps) / math.sqrt(projection.shape[0])
