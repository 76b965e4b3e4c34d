"""The LMU memory, parallel form: a causal convolution of u with the impulse response ``H_t = Ā^t B̄``, by FFT
(Chilkuri & Eliasmith 2021, "Parallelizing Legendre Memory Unit Training", arXiv 2102.11417; LMUFormer's
``LMUFFTCell``), plus the free response ``Ā^{t+1} m_{-1}`` of an initial memory.

Legend: B batch, T time, H memory inputs, N the order, F FFT bins.
"""
from __future__ import annotations

import torch

from .ref import check_lmu_inputs, to_compute_dtype
from .system import powers_applied, squarings


def fft_lmu(u: torch.Tensor, A: torch.Tensor, B: torch.Tensor, *, initial_state: torch.Tensor | None = None,
            output_final_state: bool = False, chunk_size: int = 64) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``m_t = Σ_{s <= t} Ā^{t-s} B̄ u_s + Ā^{t+1} m_{-1}``: ``recurrent_lmu`` in O(T log T) per memory row.

    Same arguments and returns as ``recurrent_lmu``: ``u [B, T, H]``, ``A [N, N]``, ``B [N]``,
    ``initial_state [B, H, N]`` -> ``m [B, T, H, N]``, final memory ``[B, H, N]`` or None, in the same dtypes.
    The FFT length is the power of two at or above ``2T - 1``, so the circular convolution is the causal linear
    one; ``chunk_size`` is unused (one signature for every form). Causal up to rounding only: the FFT spreads
    rounding errors of order ``eps`` onto earlier outputs (``chunk_lmu`` is exactly causal).
    """
    Bsz, T, H, N = check_lmu_inputs("fft_lmu", u, A, B, initial_state)
    dtype, (u, A, B, initial_state) = u.dtype, to_compute_dtype(u, A, B, initial_state)
    if T == 0:
        final = u.new_zeros(Bsz, H, N) if initial_state is None else initial_state
        return u.new_zeros(Bsz, 0, H, N, dtype=dtype), (final if output_final_state else None)
    n_fft = 1 << (2 * T - 1).bit_length()
    squares = squarings(A, T)
    h = powers_applied(squares, B.unsqueeze(0), T)[:, 0]                        # (T, N): Ā^t B̄
    spectrum = torch.fft.rfft(u, n=n_fft, dim=1)[..., None] * torch.fft.rfft(h, n=n_fft, dim=0)[:, None]
    m = torch.fft.irfft(spectrum, n=n_fft, dim=1)[:, :T]                        # (B, T, H, N)
    if initial_state is not None:
        free = powers_applied(squares, initial_state.reshape(Bsz * H, N) @ A.T, T)  # (T, B H, N): Ā^{t+1} m_{-1}
        m = m + free.view(T, Bsz, H, N).transpose(0, 1)                         # (B, T, H, N)
    return m.to(dtype), (m[:, -1] if output_final_state else None)
