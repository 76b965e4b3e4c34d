"""``lmu``: the Legendre Memory Unit as a token mixer (LMUFormer's non-spiking LMU layer)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ...ops._common import compute_dtype
from ...ops.lmu import chunk_lmu, fft_lmu, lmu_system, recurrent_lmu
from ...registry import MIXERS
from ..base import TokenMixer


@dataclass(kw_only=True)
class LMUConfig:
    """Options of ``lmu``. ``order``: the memory size N, the number of Legendre coefficients kept (LMUFormer's
    ``memory_size``; None: d_model, as its LMU layer). ``theta``: the window in tokens that the memory spans
    (LMUFormer's 128). ``mode``: the form ``forward`` uses, whatever the length: ``chunk`` (Toeplitz matmuls with
    the impulse response ``Ā^t B̄`` within chunks of ``chunk_size`` tokens, the memory carried across them; exactly
    causal), ``fft`` (LMUFormer's parallel form: one causal FFT convolution over the sequence; causal up to
    rounding) or ``recurrent``; ``step`` always uses the recurrence. ``n_heads`` is accepted, as every mixer
    receives it, and unused."""

    d_model: int
    n_heads: int = 1
    order: int | None = None
    theta: float = 128.0
    mode: Literal["chunk", "fft", "recurrent"] = "chunk"
    chunk_size: int = 64

    RANGES: ClassVar[dict[str, str]] = {"d_model": "[1, inf)", "n_heads": "[1, inf)", "order": "[1, inf)",
                                        "theta": "(0, inf)", "chunk_size": "[1, inf)"}


@MIXERS.register("lmu")
class LMU(TokenMixer):
    """The Legendre Memory Unit as LMUFormer's token mixer (Liu et al. 2024, "LMUFormer: Low
    Complexity Yet Powerful Spiking Model With Legendre Memory Units", arXiv 2402.04882; the LMU: Voelker, Kajić &
    Eliasmith 2019, NeurIPS; its parallel training: Chilkuri & Eliasmith 2021, arXiv 2102.11417), non-spiking, as
    the official ``LMUFFTCell`` and ``LMU`` layer (zeyuliu1037/LMUFormer) compute it:

    ``u_t = relu(W_u x_t + b_u)`` (one scalar per token), ``m_t = Ā m_{t-1} + B̄ u_t`` with the fixed Legendre
    delay system of order N and window theta discretised by zero-order hold (``gatelab.ops.lmu``),
    ``h_t = relu(W_h [m_t; x_t] + b_h)``, ``y_t = W_o h_t + b_o``. The memory holds the shifted-Legendre
    coefficients of u over the last theta tokens, so ``u_{t-θ'} ≈ Σ_i P_i(2θ'/θ - 1) m_{t,i}``.

    Differs from the code: its output projection is followed by a BatchNorm, whose batch statistics over time
    would let a token see later ones; gatelab's block norms stand in for it. Ā and B̄ are computed in float64 with
    ``torch.linalg.matrix_exp`` (equal to the code's ``scipy.signal.cont2discrete``) and are not parameters.

    Input and output ``[B, T, d_model]``; state: the memory ``m_t`` ``[B, N]``, kept in float32 (float64 in a
    float64 model) as the memory is computed, whatever the model's dtype. Parameters:
    ``d + 1`` (W_u) + ``(N + d) d + d`` (W_h) + ``d^2 + d`` (W_o)."""

    description = "LMU (LMUFormer): fixed Legendre delay memory of one projected input, chunked or FFT parallel form"
    paper = "Liu et al. 2024, arXiv 2402.04882; Voelker et al. 2019"
    Config = LMUConfig

    def __init__(self, d_model: int, **options):
        super().__init__()
        cfg = self.configure(d_model, options)
        self.config = cfg
        self.order = d_model if cfg.order is None else cfg.order
        self.u_proj = nn.Linear(d_model, 1)
        self.h_proj = nn.Linear(self.order + d_model, d_model)
        self.o_proj = nn.Linear(d_model, d_model)
        # (Ā [N, N], B̄ [N]), float64 and fixed; not a buffer (a cast model keeps it float64), so it is built on the
        # CPU even when the model is built on the meta device (from_pretrained), which would leave it without data
        with torch.device("cpu"):
            self._system = lmu_system(self.order, cfg.theta)

    def system(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The discrete system ``(Ā [N, N], B̄ [N])`` on ``like``'s device, in ``compute_dtype(like)`` (float32, or
        float64 for float64 ``like``: a bfloat16 model's system is not rounded to bfloat16)."""
        return tuple(s.to(device=like.device, dtype=compute_dtype(like)) for s in self._system)

    def memory(self, x: torch.Tensor, state: torch.Tensor | None, mode: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``m [B, T, N]`` (x's dtype) of the inputs ``x [B, T, d]`` after the memory ``state [B, N]`` (None:
        zeros); the new memory is returned in float32 (float64 for float64 x), as the ops compute it."""
        u = F.relu(self.u_proj(x))                                                    # (B, T, 1)
        A, B = self.system(x)
        m0 = None if state is None else state.unsqueeze(1)                           # (B, 1, N)
        ops = {"chunk": chunk_lmu, "fft": fft_lmu, "recurrent": recurrent_lmu}
        if mode not in ops:
            raise ValueError(f"lmu: mode={mode!r} is not a form of the memory; use one of {', '.join(ops)}")
        op = ops[mode]
        m, final = op(u, A, B, initial_state=m0, output_final_state=True, chunk_size=self.config.chunk_size)
        return m.squeeze(2), final.squeeze(1)                                         # (B, T, N), (B, N)

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None, *, mode: str | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        m, state = self.memory(x, state, mode or self.config.mode)
        h = F.relu(self.h_proj(torch.cat([m, x], -1)))                                # (B, T, d)
        return self.o_proj(h), state

    def step(self, x: torch.Tensor, state: torch.Tensor | None, **layer_inputs) -> tuple[torch.Tensor, torch.Tensor]:
        return self.forward(x, state, mode="recurrent")

    def init_state(self, batch_size: int) -> torch.Tensor:
        w = self._param_like()
        return w.new_zeros(batch_size, self.order, dtype=compute_dtype(w))

    def state_size(self, seq_len: int) -> int:
        return self.order

    def expected_num_params(self) -> int:
        d, N = self.config.d_model, self.order
        return d + 1 + (N + d) * d + d + d * d + d
