"""Which implementation a chunked op runs: gatelab's own PyTorch form (``torch``) or flash-linear-attention's
Triton kernels (``fla``), chosen at call time from the tensors, never from their length (DESIGN §5).

``auto`` (the default) picks ``fla`` for tensors on a CUDA device when the ``fla`` package imports and the dtype
is one its kernels compute in (float32, float16, bfloat16), and ``torch`` otherwise: on a CPU, without the
package, or in float64 (the exactness tests' dtype; fla's kernels have no float64 path). ``fla`` where it cannot
run is an error, never a silent fallback. The default of every op call that does not pass ``backend`` is set for a
block of code with ``use_backend`` (the training loop enters it with ``TrainConfig.backend``).
"""
from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
from collections.abc import Iterator
from types import ModuleType
from typing import Literal

import torch

from ..config import ConfigError

Backend = Literal["auto", "torch", "fla"]
BACKENDS: tuple[str, ...] = ("auto", "torch", "fla")
FLA_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
INSTALL = 'pip install -e ".[gpu]"'

_default: list[str] = ["auto"]   # the backend of calls that pass none; a one-item list, set by use_backend


def check_backend(name: str, where: str = "backend") -> str:
    """``name`` if it is a backend, else a ConfigError naming ``where`` and the valid ones."""
    if name not in BACKENDS:
        raise ConfigError(f"{where}={name!r} is not a backend; choose one of {', '.join(BACKENDS)}")
    return name


def default_backend() -> str:
    """The backend of op calls that pass none (``auto`` unless inside ``use_backend``)."""
    return _default[0]


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Make ``name`` the backend of every op call in this block that passes none; the previous one after it."""
    previous = _default[0]
    _default[0] = check_backend(name)
    try:
        yield
    finally:
        _default[0] = previous


@functools.cache
def _import_fla() -> ModuleType | None:
    try:
        return importlib.import_module("fla.ops")
    except ImportError:   # fla itself, or its triton, missing
        return None


def fla_ops() -> ModuleType | None:
    """flash-linear-attention's ``fla.ops`` package, or None when it (or triton) cannot be imported."""
    return _import_fla()


def fla_version() -> str | None:
    """The installed flash-linear-attention version, or None."""
    if fla_ops() is None:
        return None
    return getattr(importlib.import_module("fla"), "__version__", "unknown")


def why_not_fla(device: torch.device | str, dtype: torch.dtype = torch.float32) -> str | None:
    """Why fla's kernels cannot run on tensors of this device and dtype, or None when they can."""
    device = torch.device(device)
    if device.type != "cuda":
        return f"its Triton kernels need CUDA tensors; these are on {device}"
    if dtype not in FLA_DTYPES:
        return f"its kernels compute in float32, float16 or bfloat16; these tensors are {dtype}"
    if fla_ops() is None:
        return f"flash-linear-attention (with triton) is not installed; install it with {INSTALL}"
    return None


@functools.cache
def gated_backward_refused() -> str | None:
    """Why fla refuses the backward pass of its gated ``chunk_bwd_dqkwg`` kernel (used by ``chunk_simple_gla`` with
    a decay and by ``chunk_gated_delta_rule``) on this machine, or None. fla 0.6 raises on Hopper GPUs with
    Triton >= 3.4.0 and < 3.7.1 (wrong results there, its issue #640) unless tilelang is installed; its own flags
    are read, so the answer follows the installed fla."""
    if fla_ops() is None:
        return None
    try:
        chunk_o = importlib.import_module("fla.ops.common.chunk_o")
    except ImportError:
        return None
    refused = (getattr(chunk_o, "IS_NVIDIA_HOPPER", False) and getattr(chunk_o, "TRITON_ABOVE_3_4_0", False)
               and not getattr(chunk_o, "TRITON_ABOVE_3_7_1", True))
    if not refused or importlib.util.find_spec("tilelang") is not None:
        return None
    return ("fla refuses the backward of its gated kernels on Hopper GPUs with Triton >= 3.4.0 and < 3.7.1 "
            "(incorrect results, fla issue #640); upgrade Triton to >= 3.7.1 or install tilelang")


def needs_backward(*xs: torch.Tensor | None) -> bool:
    """Whether autograd will record an op on these inputs (gradients on, and one of them requires grad)."""
    return torch.is_grad_enabled() and any(x is not None and x.requires_grad for x in xs)


def resolve(op: str, backend: str | None, x: torch.Tensor, has_fla_kernel: bool = True,
            gated_backward: bool = False) -> str:
    """``"torch"`` or ``"fla"``: what op ``op`` runs for input ``x`` when asked for ``backend`` (None: the
    default of ``use_backend``). ``fla`` where fla cannot run, or for an op fla has no kernel of, is a ConfigError.
    ``gated_backward``: the call will run the backward of fla's gated kernel (``needs_backward`` of its inputs),
    which fla refuses on some machines (``gated_backward_refused``); there ``auto`` runs torch and ``fla`` is a
    ConfigError. Inference (no backward) runs fla there."""
    name = check_backend(default_backend() if backend is None else backend, f"{op}: backend")
    if name == "torch":
        return "torch"
    if not has_fla_kernel:
        if name == "fla":
            raise ConfigError(f"{op}: backend='fla' is not available: flash-linear-attention has no kernel for this "
                              "op; use backend='torch' or 'auto' (both run gatelab's chunked PyTorch form)")
        return "torch"
    reason = why_not_fla(x.device, x.dtype)
    if reason is None and gated_backward:
        reason = gated_backward_refused()
    if reason is None:
        return "fla"
    if name == "fla":
        raise ConfigError(f"{op}: backend='fla' cannot run here: {reason}. Use backend='torch' or 'auto' "
                          f"(fla needs a CUDA device and {INSTALL})")
    return "torch"


def backend_record(requested: str, device: torch.device | str, dtype: torch.dtype = torch.float32) -> dict:
    """What a run records in its ``meta.json``: the backend asked for, the one the chunked ops with an fla kernel
    (``chunk_gla``, ``chunk_simple_gla``, ``chunk_gated_delta_rule``) run on this device, why, and fla's version.
    ``chunk_selective_scan`` (Mamba-1) and the recurrent forms always run in PyTorch."""
    check_backend(requested)
    reason = why_not_fla(device, dtype)
    if requested == "torch":
        used, why = "torch", "asked for"
    elif reason is None:
        used, why = "fla", "asked for" if requested == "fla" else "auto: a CUDA device and fla installed"
    elif requested == "fla":
        raise ConfigError(f"backend='fla' cannot run here: {reason}. Use backend='torch' or 'auto'")
    else:
        used, why = "torch", f"auto: fla cannot run: {reason}"
    record = {"backend": requested, "backend_used": used, "backend_reason": why, "fla": fla_version()}
    refused = gated_backward_refused() if used == "fla" else None
    if refused is not None:   # auto runs these two in PyTorch here; fla raises when a model calls them
        record["torch_ops"] = {"chunk_simple_gla (with a decay)": refused, "chunk_gated_delta_rule": refused}
    return record
