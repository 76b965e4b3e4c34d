"""gatelab's chunked ops on flash-linear-attention's Triton kernels (``fla`` >= 0.6): the mapping of arguments.

The conventions already agree, so every tensor is passed as it comes (no copy, no transpose): q, k ``[B, T, H, K]``,
v ``[B, T, H, V]``; gates in natural-log space (fla multiplies them by 1/ln 2 itself before its ``exp2``);
``scale`` multiplies ``q k^T`` and defaults to ``K ** -0.5`` in both; states ``[B, H, K, V]`` (fla's default
``state_v_first=False``), returned in float32; ``o`` in q's dtype. What differs is handled here:

- ``chunk_size``: fla picks its own chunk (64; GLA uses 16 or 32 for inputs shorter than 64). gatelab's
  ``chunk_size`` tunes the PyTorch form only; both compute the same recurrence.
- ``initial_state``: fla's GLA asserts a float32 state; other dtypes are cast (gatelab's states are float32).
- the gated delta rule without a gate (``g=None``, DeltaNet): fla's gated kernel needs a gate, so a zero log gate
  (decay 1) is passed; fla's ungated delta-rule kernel takes no float32 inputs.
- dtypes: q, k, v (and beta) are passed in one dtype (``_one_dtype``: autocast's under CUDA autocast, else the
  widest); gates and states keep theirs; ``o`` comes back in q's dtype.
- checks: shapes are checked as in the PyTorch form, but not the values of g (``g <= 0``): that check reads the
  tensor, a device sync per call that would stall the GPU's queue of kernels.
- limits: the gated delta rule's kernels take ``K <= 256``; with 16-bit inputs fla needs even K and V. Both raise a
  ConfigError here that names the limit (use ``backend="torch"`` for such shapes).

GQA/GVA: gatelab's ops take as many value heads as query heads, so fla's grouped-value form is not used.
"""
from __future__ import annotations

import torch

from ..config import ConfigError
from ._common import check_recurrent_inputs
from .delta_rule.ref import check_beta

MAX_DELTA_RULE_K = 256


def _limits(name: str, q: torch.Tensor, v: torch.Tensor, max_k: int | None = None) -> None:
    K, V = q.shape[-1], v.shape[-1]
    if max_k is not None and max_k < K:
        raise ConfigError(f"{name}: backend='fla' takes head dims K <= {max_k}; got K={K} (use backend='torch')")
    if q.element_size() == 2 and (K % 2 or V % 2):
        raise ConfigError(f"{name}: backend='fla' with {q.dtype} inputs needs even head dims; got K={K}, V={V} "
                          "(use backend='torch' or float32)")


def _float32(state: torch.Tensor | None) -> torch.Tensor | None:
    return None if state is None else state.float()


def _one_dtype(*xs: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``xs`` (q, k, v and beta) in the one dtype fla's kernels need (a Triton dot takes both operands in one
    dtype): CUDA autocast's dtype when it is on (autocast leaves norms and activations in float32 beside 16-bit
    projections, so a mixer's q, k, v arrive in mixed dtypes), else the widest of them."""
    if torch.is_autocast_enabled("cuda"):
        dtype = torch.get_autocast_dtype("cuda")
    else:
        dtype = xs[0].dtype
        for x in xs[1:]:
            dtype = torch.promote_types(dtype, x.dtype)
    return tuple(x if x.dtype == dtype else x.to(dtype) for x in xs)


def _gla_family(name: str, gate: str, kernel, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                g: torch.Tensor | None, scale: float | None, initial_state: torch.Tensor | None,
                output_final_state: bool, chunk_size: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One fla kernel of the GLA family (gate per ``channel`` or per ``head``) on gatelab's arguments."""
    check_recurrent_inputs(name, q, k, v, g, initial_state, chunk_size, gate, values=False)
    dtype = q.dtype
    q, k, v = _one_dtype(q, k, v)
    _limits(name, q, v)
    o, h = kernel(q, k, v, g, scale=scale, initial_state=_float32(initial_state),
                  output_final_state=output_final_state)
    return o.to(dtype), h


def fla_chunk_gla(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, g: torch.Tensor, scale: float | None,
                  initial_state: torch.Tensor | None, output_final_state: bool, chunk_size: int
                  ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``chunk_gla`` (same arguments and results) on ``fla.ops.gla.chunk_gla``."""
    from fla.ops.gla import chunk_gla

    return _gla_family("chunk_gla", "channel", chunk_gla, q, k, v, g, scale, initial_state, output_final_state,
                       chunk_size)


def fla_chunk_simple_gla(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, g: torch.Tensor | None,
                         scale: float | None, initial_state: torch.Tensor | None, output_final_state: bool,
                         chunk_size: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``chunk_simple_gla`` (same arguments and results) on ``fla.ops.simple_gla.chunk_simple_gla``; ``g=None``
    (no decay: plain linear attention) is passed through, fla takes it."""
    from fla.ops.simple_gla import chunk_simple_gla

    return _gla_family("chunk_simple_gla", "head", chunk_simple_gla, q, k, v, g, scale, initial_state,
                       output_final_state, chunk_size)


def fla_chunk_gated_delta_rule(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, g: torch.Tensor | None,
                               beta: torch.Tensor, scale: float | None, initial_state: torch.Tensor | None,
                               output_final_state: bool, chunk_size: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``chunk_gated_delta_rule`` (same arguments and results) on ``fla.ops.gated_delta_rule``; ``g=None`` runs
    with a zero log gate ``[B, T, H]`` in float32."""
    from fla.ops.gated_delta_rule import chunk_gated_delta_rule

    check_recurrent_inputs("chunk_gated_delta_rule", q, k, v, g, initial_state, chunk_size, "head", values=False)
    check_beta("chunk_gated_delta_rule", beta, q)
    if g is None:
        g = q.new_zeros(q.shape[:3], dtype=torch.float32)                          # (B, T, H) decay 1
    dtype = q.dtype
    q, k, v, beta = _one_dtype(q, k, v, beta)
    _limits("chunk_gated_delta_rule", q, v, MAX_DELTA_RULE_K)
    o, h = chunk_gated_delta_rule(q, k, v, g, beta, scale=scale, initial_state=_float32(initial_state),
                                  output_final_state=output_final_state)
    return o.to(dtype), h
