"""The decoding state of causal flow attention and the checks shared by its two forms."""
from __future__ import annotations

from typing import NamedTuple

import torch

from .._common import check_qkv


class FlowState(NamedTuple):
    """Running sums of causal flow attention after ``count`` tokens (per sequence and head):
    ``q_sum``, ``k_sum`` ``[B, H, K]`` (sums of the features), ``qi_sum`` ``[B, H, K]`` (sum of ``I_i phi(q_i)``),
    ``ko_sum`` ``[B, H, K]`` (sum of ``O_j phi(k_j)``), ``comp_sum`` ``[B, H]`` (sum of ``exp(O^_j)``), ``kv``
    ``[B, H, K, V]`` (sum of ``phi(k_j)^T (C_j v_j)``). Float32, or float64 for float64 inputs."""

    q_sum: torch.Tensor
    k_sum: torch.Tensor
    qi_sum: torch.Tensor
    ko_sum: torch.Tensor
    comp_sum: torch.Tensor
    kv: torch.Tensor
    count: int


def empty_flow_state(B: int, H: int, K: int, V: int, like: torch.Tensor) -> FlowState:
    """The state before any token: zero sums, ``count`` 0 (in ``like``'s device and dtype)."""
    zeros = like.new_zeros(B, H, K)
    return FlowState(zeros, zeros, zeros, zeros, like.new_zeros(B, H), like.new_zeros(B, H, K, V), 0)


def check_flow_inputs(name: str, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool,
                      lengths: torch.Tensor | None, initial_state: FlowState | None) -> tuple[int, int, int, int, int]:
    """Validate the inputs of ``flow_attention`` / ``flow_attention_reference``; return ``(B, T, H, K, V)``.
    Checking the values of ``lengths`` reads them (a device sync on a GPU)."""
    B, T, H, K, V = check_qkv(name, q, k, v)
    if causal and lengths is not None:
        raise ValueError(f"{name}: lengths is for causal=False (a causal output never sees later padding)")
    if not causal and initial_state is not None:
        raise ValueError(f"{name}: initial_state needs causal=True (the non-causal form reads the whole sequence)")
    if lengths is not None and tuple(lengths.shape) != (B,):
        raise ValueError(f"{name}: lengths must be [B] = ({B},); got {tuple(lengths.shape)}")
    if lengths is not None and T and ((lengths < 1) | (lengths > T)).any():     # reads lengths (a device sync)
        raise ValueError(f"{name}: lengths must be in [1, T] = [1, {T}] (a sequence without a real token has no "
                         f"flow: 0 / 0); got {lengths.tolist()}")
    if initial_state is not None and tuple(initial_state.kv.shape) != (B, H, K, V):
        raise ValueError(f"{name}: initial_state.kv must be [B, H, K, V] = {(B, H, K, V)}; "
                         f"got {tuple(initial_state.kv.shape)}")
    return B, T, H, K, V
