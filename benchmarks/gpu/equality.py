"""The equality checks of the op backends: ``backend="fla"`` against gatelab's PyTorch chunked form and against
the float64 recurrence (``ref.py``) on the same device, for outputs, final states and every input gradient.

Used by tests/gpu/test_fla_backend.py (asserts) and benchmarks/gpu_check.py (prints the measured errors).
Tolerances, by relative RMS error (DESIGN §4): float32 ``FLOAT32_TOL`` (the CPU float32 tests' 1e-5; fla's float32
dots must run in IEEE float32 for it, see ``full_precision_fla``); bfloat16 ``BF16_TOL`` (fla computes its dots
in bf16, gatelab's form in float32 after rounding the inputs to bf16; both are compared with the float64
recurrence of the same rounded inputs).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from gatelab.ops import (
    chunk_gated_delta_rule,
    chunk_gla,
    chunk_simple_gla,
    recurrent_gated_delta_rule,
    recurrent_gla,
    recurrent_simple_gla,
)

FLOAT32_TOL = 1e-5
BF16_TOL = 2e-2
TOLERANCE = {torch.float32: FLOAT32_TOL, torch.bfloat16: BF16_TOL}


@dataclass(frozen=True)
class Case:
    """One comparison: an op, whether it has a gate, and the shape (T not a multiple of 64, K != V)."""

    op: str                  # gla | simple_gla | gated_delta_rule
    gated: bool = True
    initial_state: bool = True
    B: int = 2
    T: int = 100
    H: int = 2
    K: int = 32
    V: int = 64

    @property
    def name(self) -> str:
        return (f"{self.op}{'' if self.gated else '-nogate'}{'-h0' if self.initial_state else ''}"
                f"-T{self.T}-K{self.K}-V{self.V}")


CASES = [Case("gla"), Case("simple_gla"), Case("simple_gla", gated=False), Case("gated_delta_rule"),
         Case("gated_delta_rule", gated=False), Case("gla", initial_state=False, T=200),
         Case("gated_delta_rule", initial_state=False, T=200)]
OPS = {"gla": (chunk_gla, recurrent_gla), "simple_gla": (chunk_simple_gla, recurrent_simple_gla),
       "gated_delta_rule": (chunk_gated_delta_rule, recurrent_gated_delta_rule)}


def full_precision_fla() -> None:
    """Make fla's Triton kernels compute float32 dots in IEEE float32 (Triton's default is TF32, ~1e-3 relative),
    in a Triton cache of their own. Call before any fla kernel is compiled in this process."""
    os.environ["TRITON_F32_DEFAULT"] = "ieee"
    os.environ.setdefault("TRITON_CACHE_DIR", os.path.join(os.path.expanduser("~"), ".triton", "cache-ieee"))
    try:
        import triton.language as tl
        from fla.ops.gated_delta_rule import chunk_fwd
    except ImportError:
        return
    chunk_fwd.SOLVE_TRIL_DOT_PRECISION = tl.constexpr("ieee")   # the delta rule's triangular solve asks for TF32


def inputs(case: Case, device: str, dtype: torch.dtype, seed: int = 0) -> dict[str, torch.Tensor | None]:
    """The op's inputs (rounded to ``dtype``), the incoming gradients ``do``/``dht``; gates moderate."""
    gen = torch.Generator(device=device).manual_seed(seed)
    B, T, H, K, V = case.B, case.T, case.H, case.K, case.V

    def randn(*shape):
        return torch.randn(*shape, generator=gen, device=device)

    q, k, v = randn(B, T, H, K), randn(B, T, H, K), randn(B, T, H, V)
    x = {"q": q, "k": k, "v": v, "g": None, "beta": None}
    if case.op == "gla":
        x["g"] = F.logsigmoid(randn(B, T, H, K)) / 4
    elif case.gated:
        x["g"] = F.logsigmoid(randn(B, T, H) + 2)
    if case.op == "gated_delta_rule":
        x["q"], x["k"] = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        x["beta"] = torch.rand(B, T, H, generator=gen, device=device)
    x["initial_state"] = randn(B, H, K, V) if case.initial_state else None
    x = {n: None if t is None else t.to(dtype if n != "initial_state" else torch.float32) for n, t in x.items()}
    x["do"], x["dht"] = randn(B, T, H, V).to(dtype), randn(B, H, K, V)
    return x


def run(case: Case, x: dict, backend: str | None, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Output, final state and input gradients of one form: ``backend`` of the chunked op, or (None) the float64
    recurrence of the same inputs."""
    chunk, recurrence = OPS[case.op]
    names = [n for n in ("q", "k", "v", "g", "beta", "initial_state") if x[n] is not None]
    leaves = {n: x[n].detach().to(torch.float64 if backend is None else x[n].dtype).requires_grad_() for n in names}
    kw = {n: leaves[n] for n in ("g", "beta", "initial_state") if n in leaves}
    if backend is None:
        o, h = recurrence(leaves["q"], leaves["k"], leaves["v"], **kw, output_final_state=True)
    else:
        o, h = chunk(leaves["q"], leaves["k"], leaves["v"], **kw, output_final_state=True, backend=backend)
    grads = torch.autograd.grad((o * x["do"].to(o.dtype)).sum() + (h * x["dht"].to(h.dtype)).sum(),
                                list(leaves.values()))
    return {"o": o, "h": h, **{f"d{n}": gr for n, gr in zip(names, grads, strict=True)}}


def rel_rms(ref: torch.Tensor, out: torch.Tensor) -> float:
    """``rms(out - ref) / rms(ref)`` in float64."""
    ref, out = ref.double(), out.double()
    return ((out - ref).pow(2).mean().sqrt() / ref.pow(2).mean().sqrt().clamp(min=1e-30)).item()


def compare(case: Case, device: str, dtype: torch.dtype, backend: str = "fla") -> list[dict]:
    """One row per compared tensor: ``backend``'s error against gatelab's torch form and against the float64
    recurrence, the torch form's against the recurrence, the tolerance and whether ``backend`` is within it."""
    x = inputs(case, device, dtype)
    out, ours, ref = run(case, x, backend, dtype), run(case, x, "torch", dtype), run(case, x, None, dtype)
    tol = TOLERANCE[dtype]
    rows = []
    for name in ref:
        vs_torch, vs_ref = rel_rms(ours[name], out[name]), rel_rms(ref[name], out[name])
        finite = bool(torch.isfinite(out[name]).all())
        rows.append({"case": case.name, "dtype": str(dtype).removeprefix("torch."), "tensor": name,
                     "backend": backend, "vs_torch": vs_torch, "vs_float64": vs_ref,
                     "torch_vs_float64": rel_rms(ref[name], ours[name]), "tolerance": tol,
                     "ok": finite and vs_torch <= tol and vs_ref <= tol})
    return rows
