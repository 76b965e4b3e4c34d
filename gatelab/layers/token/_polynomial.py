"""The polynomial feature map of ATLAS: all monomials of a vector up to a degree, with one coefficient per degree."""
from __future__ import annotations

import itertools
import math
from collections import Counter

import torch
from torch import nn


def feature_dim(dim: int, degree: int) -> int:
    """The number of monomials of degree <= ``degree`` in ``dim`` variables: ``C(dim + degree, degree)``."""
    return math.comb(dim + degree, degree)


class PolynomialFeatures(nn.Module):
    """``phi(x) = [a_1 x, a_0, a_2 x^(2), ..., a_p x^(p)]`` for ``x [..., d]``, where ``x^(n)`` holds every
    monomial ``x^beta`` with ``|beta| = n`` once, scaled by ``sqrt(n! / beta!)`` (the multinomial coefficient), so
    that ``phi(x) . phi(y) = sum_n a_n^2 (x . y)^n``: the monomial map ``[x^beta]_{|beta| <= p}`` of ATLAS
    (Behrouz et al. 2025) with a learnable coefficient per degree. The degree-1 block comes first (the memory's
    residual reads it). ``a_n`` starts at ``1 / sqrt(n!)``, so the kernel starts as the degree-p Taylor
    expansion of ``exp(x . y)``. Output ``[..., C(d + p, p)]``; parameters: ``p + 1`` (``coeffs``)."""

    def __init__(self, dim: int, degree: int):
        super().__init__()
        self.dim, self.degree = dim, degree
        self.coeffs = nn.Parameter(torch.tensor([1 / math.sqrt(math.factorial(n)) for n in range(degree + 1)]))
        for n in range(2, degree + 1):
            index, scale = self._monomials(n)
            self.register_buffer(f"index{n}", index, persistent=False)                       # (M_n, n)
            self.register_buffer(f"scale{n}", scale, persistent=False)                       # (M_n,)

    def _monomials(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The variables of every monomial of degree n (``[M_n, n]``) and its multinomial scale (``[M_n]``)."""
        combos = list(itertools.combinations_with_replacement(range(self.dim), n))
        scale = [math.sqrt(math.factorial(n) / math.prod(math.factorial(c) for c in Counter(b).values()))
                 for b in combos]
        return torch.tensor(combos), torch.tensor(scale, dtype=torch.float64)

    @torch.no_grad()
    def reset_buffers(self) -> None:
        """Recompute the non-persistent index and scale buffers in place (loading that builds the model on the
        meta device, ``from_pretrained``, calls this after the weights are in)."""
        for n in range(2, self.degree + 1):
            index, scale = self._monomials(n)
            getattr(self, f"index{n}").copy_(index)
            getattr(self, f"scale{n}").copy_(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.coeffs.to(x.dtype)
        blocks = [a[1] * x, a[0] * torch.ones_like(x[..., :1])]                              # (..., d), (..., 1)
        for n in range(2, self.degree + 1):
            index, scale = getattr(self, f"index{n}"), getattr(self, f"scale{n}").to(x.dtype)
            blocks.append(a[n] * scale * x[..., index].prod(-1))                             # (..., M_n)
        return torch.cat(blocks, dim=-1)                                                     # (..., C(d + p, p))
