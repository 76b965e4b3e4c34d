"""The LMU memory, reference recurrence: ``m_t = Ā m_{t-1} + B̄ u_t`` token by token.

Legend: B batch, T time, H memory inputs (each with its own memory), N the order.
"""
from __future__ import annotations

import torch

from .._common import compute_dtype


def check_lmu_inputs(name: str, u: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
                     initial_state: torch.Tensor | None) -> tuple[int, int, int, int]:
    """Shapes ``u [B, T, H]``, ``A [N, N]``, ``B [N]``, ``initial_state [B, H, N]``; a ValueError says which
    argument is wrong."""
    if u.dim() != 3:
        raise ValueError(f"{name}: u must be [B, T, H]; got shape {tuple(u.shape)}")
    Bsz, T, H = u.shape
    N = B.shape[-1]
    if B.dim() != 1 or A.shape != (N, N):
        raise ValueError(f"{name}: A must be [N, N] and B [N]; got A {tuple(A.shape)}, B {tuple(B.shape)}")
    if initial_state is not None and initial_state.shape != (Bsz, H, N):
        raise ValueError(f"{name}: initial_state must be [B, H, N] = {(Bsz, H, N)}; "
                         f"got {tuple(initial_state.shape)}")
    return Bsz, T, H, N


def to_compute_dtype(u: torch.Tensor, A: torch.Tensor, B: torch.Tensor, initial_state: torch.Tensor | None
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """u, A, B and the initial state (or None) in ``compute_dtype(u)``."""
    ct = compute_dtype(u)
    return u.to(ct), A.to(ct), B.to(ct), None if initial_state is None else initial_state.to(ct)


def recurrent_lmu(u: torch.Tensor, A: torch.Tensor, B: torch.Tensor, *, initial_state: torch.Tensor | None = None,
                  output_final_state: bool = False, chunk_size: int = 64) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The LMU's linear memory (Voelker et al. 2019): ``m_t = Ā m_{t-1} + B̄ u_t`` for each of H inputs.

    Args:
        u: ``[B, T, H]`` the memory's inputs. A: ``[N, N]`` (Ā), B: ``[N]`` (B̄): the discrete system
            (``lmu_system``). initial_state: ``[B, H, N]`` (``m_{-1}``) or None (zeros).
        chunk_size: unused here (one signature for every form).

    Returns:
        ``m`` ``[B, T, H, N]`` (every step's memory) in u's dtype and the final memory ``[B, H, N]`` or None, in
        the compute dtype: every form runs in float32 (float64 for float64 u), A, B and the initial state cast
        to it, so a bfloat16 model's system is not rounded to bfloat16.
    """
    Bsz, T, H, N = check_lmu_inputs("recurrent_lmu", u, A, B, initial_state)
    dtype, (u, A, B, m0) = u.dtype, to_compute_dtype(u, A, B, initial_state)
    m = u.new_zeros(Bsz, H, N) if m0 is None else m0                                      # (B, H, N)
    out = []
    for t in range(T):
        m = m @ A.T + u[:, t, :, None] * B                                               # (B, H, N)
        out.append(m)
    memory = torch.stack(out, 1) if out else u.new_zeros(Bsz, 0, H, N)                   # (B, T, H, N)
    return memory.to(dtype), (m if output_final_state else None)
