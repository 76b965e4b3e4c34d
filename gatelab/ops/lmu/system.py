"""The Legendre Memory Unit's fixed linear system: the Legendre delay system, its zero-order-hold discretisation and
the Legendre decoder that reads a delayed input back from the memory (Voelker et al. 2019).

Legend: N the order (memory size), theta the window in time steps.
"""
from __future__ import annotations

import torch


def check_system(order: int, theta: float) -> None:
    """Raise ValueError naming ``order`` (>= 1) or ``theta`` (> 0) when outside their domain."""
    if order < 1:
        raise ValueError(f"LMU order must be >= 1; got order={order}")
    if not theta > 0:
        raise ValueError(f"LMU theta (the window, in steps) must be > 0; got theta={theta}")


def legendre_delay_system(order: int, theta: float, *, dtype: torch.dtype = torch.float64
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Continuous-time ``dm/dt = A m + B u`` whose state holds the Legendre coefficients of u over the last theta:

    ``A_ij = (2i + 1)/theta * (-1 if i < j else (-1)^(i - j + 1))``, ``B_i = (2i + 1)/theta * (-1)^i``
    (Voelker, Kajić & Eliasmith 2019, Eq. 1-2; the Padé approximant of the delay ``e^{-theta s}``).

    Returns ``A [N, N]`` and ``B [N]``."""
    check_system(order, theta)
    q = torch.arange(order, dtype=dtype)
    r = (2 * q + 1) / theta                                                     # (N,)
    i, j = q[:, None], q[None, :]
    sign = torch.where(i < j, -torch.ones((), dtype=dtype), (-1.0) ** (i - j + 1))  # (N, N)
    return r[:, None] * sign, r * (-1.0) ** q


def zoh_discretize(A: torch.Tensor, B: torch.Tensor, dt: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-order hold: ``Ā = e^{A dt}``, ``B̄ = ∫_0^dt e^{A s} ds B``, both read off the exponential of the
    block matrix ``[[A, B], [0, 0]] dt`` (what ``scipy.signal.cont2discrete(method="zoh")`` computes).

    ``A [N, N]``, ``B [N]`` -> ``Ā [N, N]``, ``B̄ [N]``."""
    N = A.shape[0]
    block = A.new_zeros(N + 1, N + 1)                                           # (N + 1, N + 1)
    block[:N, :N], block[:N, N] = A, B
    e = torch.linalg.matrix_exp(block * dt)
    return e[:N, :N], e[:N, N]


def lmu_system(order: int, theta: float, *, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """The discrete LMU system ``(Ā [N, N], B̄ [N])``: the Legendre delay system discretised by ZOH with step 1,
    as LMUFormer's ``LMUFFTCell.stateSpaceMatrices`` (computed in float64, then cast to ``dtype``)."""
    A_bar, B_bar = zoh_discretize(*legendre_delay_system(order, theta))
    return A_bar.to(dtype), B_bar.to(dtype)


def legendre_decoder(order: int, theta: float, delays: torch.Tensor) -> torch.Tensor:
    """Weights that read ``u(t - delay)`` off the memory: ``u(t - θ') ≈ Σ_i P_i(2θ'/θ - 1) m_i(t)``, the
    shifted Legendre polynomials at ``θ'/θ`` (Voelker et al. 2019, Eq. 3).

    ``delays [K]`` (in steps, within [0, theta]) -> ``[K, N]``."""
    check_system(order, theta)
    r = (2 * delays.to(torch.float64) / theta - 1)[:, None]                    # (K, 1)
    n = torch.arange(order, dtype=torch.float64)[None, :]                      # (1, N)
    return torch.special.legendre_polynomial_p(r, n)                           # (K, N)


def squarings(A: torch.Tensor, n: int) -> list[torch.Tensor]:
    """``[A, A^2, A^4, ...]``: the ``A^(2^j)`` with ``2^j < n``, what ``powers_applied`` needs for n powers."""
    out, power = [], A
    while 2 ** len(out) < n:
        out.append(power)
        if 2 ** len(out) < n:
            power = power @ power                                               # A^(2^j)
    return out


def powers_applied(squares: list[torch.Tensor], v: torch.Tensor, n: int) -> torch.Tensor:
    """``A^t v_m`` for ``t < n``: ``v [M, N]`` -> ``[n, M, N]``, by doubling: each block of rows is the previous
    one times the next of ``squares`` (``squarings(A, n)``), ``n M N^2`` multiply-adds."""
    out = v.unsqueeze(0)                                                        # (1, M, N)
    for power in squares:
        out = torch.cat([out, out @ power.T], 0)                                # (2k, M, N): rows A^t v, t < 2k
    return out[:n]
