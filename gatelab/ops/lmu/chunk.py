"""The LMU memory, chunked form: within a chunk of C tokens a causal Toeplitz matmul with the impulse response
``H_τ = Ā^τ B̄``, across chunks the memory carried by ``Ā^{τ+1}``. Exactly causal (the masked kernel holds exact
zeros), large matmuls, ``T / C`` sequential steps of ``[N, N]`` size for the memory between chunks.

Legend: B batch, T time, H memory inputs, N the order, C chunk size, n number of chunks.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .ref import check_lmu_inputs, to_compute_dtype
from .system import powers_applied, squarings


def chunk_lmu(u: torch.Tensor, A: torch.Tensor, B: torch.Tensor, *, initial_state: torch.Tensor | None = None,
              output_final_state: bool = False, chunk_size: int = 64) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``recurrent_lmu`` by chunks: ``m_{cC+τ} = Σ_{s <= τ} H_{τ-s} u_{cC+s} + Ā^{τ+1} m_{cC-1}``.

    Same arguments and returns as ``recurrent_lmu`` (``u [B, T, H]``, ``A [N, N]``, ``B [N]``,
    ``initial_state [B, H, N]`` -> ``m [B, T, H, N]``, final memory ``[B, H, N]`` or None, in the same dtypes),
    plus ``chunk_size``.
    """
    Bsz, T, H, N = check_lmu_inputs("chunk_lmu", u, A, B, initial_state)
    if chunk_size < 1:
        raise ValueError(f"chunk_lmu: chunk_size must be >= 1; got {chunk_size}")
    dtype, (u, A, B, initial_state) = u.dtype, to_compute_dtype(u, A, B, initial_state)
    if T == 0:
        final = u.new_zeros(Bsz, H, N) if initial_state is None else initial_state
        return u.new_zeros(Bsz, 0, H, N, dtype=dtype), (final if output_final_state else None)
    C = min(chunk_size, T)
    pad = (-T) % C
    n = (T + pad) // C
    squares = squarings(A, C)
    h = powers_applied(squares, B.unsqueeze(0), C)[:, 0]                        # (C, N): Ā^τ B̄
    lag = torch.arange(C, device=u.device)
    lag = lag[:, None] - lag[None, :]                                           # (C, C): τ - s
    kernel = h[lag.clamp(min=0)] * (lag >= 0).unsqueeze(-1).to(h.dtype)         # (C, C, N): H_{τ-s}, 0 for s > τ
    chunks = F.pad(u, (0, 0, 0, pad)).view(Bsz, n, C, H)                        # (B, n, C, H)
    intra = torch.einsum("tsk,bcsh->bcthk", kernel, chunks)                     # (B, n, C, H, N)
    A_C = torch.linalg.matrix_power(A, C)                                       # (N, N)
    m = u.new_zeros(Bsz, H, N) if initial_state is None else initial_state      # (B, H, N)
    starts = []
    for c in range(n):                                                          # the memory before each chunk
        starts.append(m)
        m = m @ A_C.T + intra[:, c, -1]                                         # (B, H, N): Ā^C m + chunk's own
    starts = torch.stack(starts, 1).reshape(Bsz * n * H, N)                     # (B n H, N)
    free = powers_applied(squares, starts @ A.T, C)                             # (C, B n H, N): Ā^{τ+1} m_{cC-1}
    free = free.view(C, Bsz, n, H, N).permute(1, 2, 0, 3, 4)                    # (B, n, C, H, N)
    memory = (intra + free).reshape(Bsz, n * C, H, N)[:, :T]                    # (B, T, H, N)
    return memory.to(dtype), (memory[:, -1] if output_final_state else None)
