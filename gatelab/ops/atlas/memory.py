"""ATLAS's deep memory and what its inner loop needs: the read, the closed-form loss gradient, Newton-Schulz.

The memory of one head is a two-layer MLP ``M(u) = u[:V] + silu(u W1) W2`` (``W1 [F, D]``, ``W2 [D, V]``): its
weights are the state, trained at test time. The gradients are written out (no autograd in the inner loop), so
the outer autograd differentiates through them like any other expression.

Legend: F feature dim (of phi(k)), D memory hidden dim, V value dim, N tokens; ``...`` any batch dims.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

NS_COEFFS = (3.4445, -4.7750, 2.0315)  # Muon's quintic Newton-Schulz iteration (Jordan et al. 2024)


class Errors(NamedTuple):
    """Per-token pieces of the gradient of ``sum_n gamma_n ||M(u_n) - v_n||^2``: the hidden activations
    ``a [..., N, D]``, the weighted output error ``de = 2 gamma (M(u) - v) [..., N, V]`` and its pull-back to the
    hidden pre-activations ``dz [..., N, D]``. Token n's gradient is ``(u_n^T dz_n, a_n^T de_n)``."""

    a: torch.Tensor
    de: torch.Tensor
    dz: torch.Tensor


def read(w1: torch.Tensor, w2: torch.Tensor, u: torch.Tensor, residual: bool) -> torch.Tensor:
    """``M(u) [..., N, V]`` for ``u [..., N, F]`` and weights ``w1 [..., F, D]``, ``w2 [..., D, V]``."""
    out = torch.nn.functional.silu(u @ w1) @ w2                              # (..., N, V)
    return out + u[..., : w2.shape[-1]] if residual else out


def errors(w1: torch.Tensor, w2: torch.Tensor, u: torch.Tensor, v: torch.Tensor, gamma: torch.Tensor,
           residual: bool) -> Errors:
    """The pieces of the gradient of ``sum_n gamma_n ||M(u_n) - v_n||^2`` at ``(w1, w2)`` (see ``Errors``);
    ``u [..., N, F]``, ``v [..., N, V]``, ``gamma [..., N]``."""
    z = u @ w1                                                              # (..., N, D)
    s = torch.sigmoid(z)
    a = z * s                                                               # (..., N, D) silu(z)
    out = a @ w2 + u[..., : w2.shape[-1]] if residual else a @ w2           # (..., N, V)
    de = 2 * gamma.unsqueeze(-1) * (out - v)                                # (..., N, V)
    dz = (de @ w2.transpose(-1, -2)) * s * (1 + z * (1 - s))                # (..., N, D) silu'(z) = s (1 + z (1 - s))
    return Errors(a, de, dz)


def window_gradient(w1: torch.Tensor, w2: torch.Tensor, u: torch.Tensor, v: torch.Tensor, gamma: torch.Tensor,
                    residual: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``(dL/dW1 [..., F, D], dL/dW2 [..., D, V])`` of ``L = sum_n gamma_n ||M(u_n) - v_n||^2`` over the N tokens."""
    e = errors(w1, w2, u, v, gamma, residual)
    return u.transpose(-1, -2) @ e.dz, e.a.transpose(-1, -2) @ e.de


def newton_schulz_polynomial(gram: torch.Tensor, steps: int) -> torch.Tensor:
    """The ``r x r`` matrix ``R`` with ``NS(y) = y R`` for a Frobenius-normalised ``y`` whose Gram matrix is
    ``gram = y^T y [..., r, r]``. Muon's quintic iteration ``y <- a y + b y B + c y B^2`` (``B = y^T y``) keeps y
    a product ``y_0 R`` with R a polynomial in ``B_0``: ``P = a + b B + c B^2``, ``R <- R P``, ``B <- P B P``."""
    a, b, c = NS_COEFFS
    eye = torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device)
    poly = None
    for _ in range(steps):
        p = a * eye + b * gram + c * gram @ gram                            # (..., r, r)
        poly = p if poly is None else poly @ p
        gram = p @ gram @ p
    return poly


def newton_schulz(x: torch.Tensor, steps: int, eps: float = 1e-7) -> torch.Tensor:
    """Muon's orthogonalisation of ``x [..., R, C]``: ``steps`` quintic Newton-Schulz iterations
    ``y <- a y + (b A + c A^2) y`` with ``A = y y^T``, from ``y = x / ||x||_F``; they push every singular value
    towards 1 (``U V^T`` of the SVD, approximately). ``steps=0`` returns x unchanged. ``eps`` keeps the norm's
    gradient finite at ``x = 0``. Runs on the smaller Gram side (``newton_schulz_polynomial``): the same
    polynomial, in ``r x r`` products (r = min(R, C))."""
    if steps == 0:
        return x
    wide = x.shape[-2] < x.shape[-1]
    y = x.transpose(-1, -2) if wide else x                                  # (..., c, r) with r <= c
    y = y / (y.square().sum((-2, -1), keepdim=True) + eps**2).sqrt()
    y = y @ newton_schulz_polynomial(y.transpose(-1, -2) @ y, steps)       # (..., c, r)
    return y.transpose(-1, -2) if wide else y
