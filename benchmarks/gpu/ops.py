"""Forward+backward of each chunked op through gatelab's dispatch (``backend="torch"`` and ``"fla"``), fla's own
function called directly (the dispatch's overhead is the difference), and causal SDPA, at one shape."""
from __future__ import annotations

import importlib
from collections.abc import Callable

import torch
import torch.nn.functional as F

from gatelab.ops import chunk_gated_delta_rule, chunk_gla, chunk_simple_gla, sdpa_attention

OPS = ("gla", "simple_gla", "gated_delta_rule")
GATELAB = {"gla": chunk_gla, "simple_gla": chunk_simple_gla, "gated_delta_rule": chunk_gated_delta_rule}
FLA = {"gla": ("fla.ops.gla", "chunk_gla"), "simple_gla": ("fla.ops.simple_gla", "chunk_simple_gla"),
       "gated_delta_rule": ("fla.ops.gated_delta_rule", "chunk_gated_delta_rule")}


def op_inputs(op: str, B: int, T: int, H: int, D: int, device: str, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Leaf tensors of op ``op`` (q, k, v, log gate, beta) with ``requires_grad``, and the incoming gradient."""
    def leaf(x: torch.Tensor) -> torch.Tensor:
        return x.to(dtype).requires_grad_()

    q, k, v = (torch.randn(B, T, H, D, device=device) for _ in range(3))
    x = {"q": leaf(q), "k": leaf(k), "v": leaf(v)}
    if op == "gla":
        x["g"] = leaf(F.logsigmoid(torch.randn(B, T, H, D, device=device)) / 16)
    else:
        x["g"] = leaf(F.logsigmoid(torch.randn(B, T, H, device=device) + 2))
    if op == "gated_delta_rule":
        x["q"], x["k"] = leaf(F.normalize(q, dim=-1)), leaf(F.normalize(k, dim=-1))
        x["beta"] = leaf(torch.rand(B, T, H, device=device))
    x["do"] = torch.randn(B, T, H, D, device=device, dtype=dtype)
    return x


def fwd_bwd(fn: Callable, x: dict[str, torch.Tensor], positional_gates: bool = False) -> Callable[[], None]:
    """One forward and backward of ``fn`` on ``x`` (gradients of every leaf discarded)."""
    leaves = [t for n, t in x.items() if n != "do"]
    gates = [x[n] for n in ("g", "beta") if n in x]

    def run() -> None:
        if positional_gates:
            o, _ = fn(x["q"], x["k"], x["v"], *gates)
        else:
            o, _ = fn(x["q"], x["k"], x["v"], **{n: x[n] for n in ("g", "beta") if n in x})
        torch.autograd.grad(o, leaves, x["do"])
    return run


def op_timers(op: str, B: int, T: int, H: int, D: int, device: str, dtype: torch.dtype, fla: bool
              ) -> dict[str, Callable[[], None]]:
    """The forward+backward callables timed for one op at one shape: gatelab torch, gatelab fla and fla direct
    (when ``fla``)."""
    x = op_inputs(op, B, T, H, D, device, dtype)
    timers = {"gatelab torch": fwd_bwd(lambda *a, **kw: GATELAB[op](*a, **kw, backend="torch"), x)}
    if fla:
        timers["gatelab fla"] = fwd_bwd(lambda *a, **kw: GATELAB[op](*a, **kw, backend="fla"), x)
        module, name = FLA[op]
        timers["fla direct"] = fwd_bwd(getattr(importlib.import_module(module), name), x, positional_gates=True)
    return timers


def sdpa_timer(B: int, T: int, H: int, D: int, device: str, dtype: torch.dtype) -> Callable[[], None]:
    """Causal softmax attention through gatelab's ``sdpa_attention`` (FlashAttention on CUDA), forward+backward."""
    x = {n: torch.randn(B, T, H, D, device=device, dtype=dtype).requires_grad_() for n in ("q", "k", "v")}
    x["do"] = torch.randn(B, T, H, D, device=device, dtype=dtype)
    return fwd_bwd(sdpa_attention, x)
