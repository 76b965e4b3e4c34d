"""The fast forms of the later mixers' ops beside their reference forms, for ``python -m benchmarks.ops``.

Every form takes float32 inputs at B=1, H=8 heads of width 64 (the sizes the other op rows use) unless its builder
says otherwise, built from one
seeded generator, and returns the output tensor; ``fast`` is the form the mixer trains with and ``ref`` the
readable definition the tests prove it equal to.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from gatelab.ops import (
    chunk_atlas,
    chunk_lmu,
    chunk_mossformer_attention,
    combiner_attention,
    combiner_reference,
    fft_kernel_rpe,
    fft_lmu,
    flow_attention,
    flow_attention_reference,
    quadratic_kernel_rpe,
    recurrent_atlas,
    recurrent_lmu,
    recurrent_mossformer_attention,
)
from gatelab.ops.lmu import lmu_system

B, H, D = 1, 8, 64


@dataclass(frozen=True)
class OpForm:
    """One op: ``inputs(T)`` builds its tensors (those with gradients marked), ``fast`` and ``ref`` map them to
    the output ``[B, T, H, *]``."""

    inputs: Callable[[int], dict[str, torch.Tensor]]
    fast: Callable[..., torch.Tensor]
    ref: Callable[..., torch.Tensor]


def _qkv(T: int, positive: bool = False, names: tuple[str, ...] = ("q", "k", "v")) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    x = {n: torch.randn(B, T, H, D, generator=gen) for n in names}
    if positive:
        x = {n: (t.sigmoid() if n != "v" else t) for n, t in x.items()}
    return {n: t.requires_grad_() for n, t in x.items()}


def _combiner(variant: str) -> OpForm:
    def block(T: int) -> int:
        return max(1, math.isqrt(T))

    return OpForm(
        inputs=_qkv,
        fast=lambda q, k, v: combiner_attention(q, k, v, variant=variant, block_size=block(q.shape[1])),
        ref=lambda q, k, v: combiner_reference(q, k, v, variant=variant, block_size=block(q.shape[1]))[0],
    )


def _mossformer_inputs(T: int) -> dict[str, torch.Tensor]:
    x = _qkv(T, names=("quad_q", "quad_k", "lin_q", "lin_k", "v"))
    return {n: F.normalize(t, dim=-1).detach().requires_grad_() if n != "v" else t for n, t in x.items()}


def _kernel_rpe_inputs(T: int) -> dict[str, torch.Tensor]:
    """Positive random features of width int(D ln D) (Performer's count) and a bias per lag and head."""
    gen = torch.Generator().manual_seed(0)
    M = int(D * math.log(D))
    x = {n: torch.rand(B, T, H, M, generator=gen) / M ** 0.5 for n in ("q", "k")}
    x["v"] = torch.randn(B, T, H, D, generator=gen)
    x["bias"] = -torch.rand(H, 1, generator=gen) * torch.arange(T) / T
    return {n: t.requires_grad_() for n, t in x.items()}


MOSSFORMER_GROUP = 256   # MossFormer's group size
ATLAS_H, ATLAS_F, ATLAS_D, ATLAS_WINDOW, ATLAS_CHUNK = 4, 153, 16, 8, 16   # the layer at d_model 64: degree-2 features


def _atlas_inputs(T: int) -> dict[str, torch.Tensor]:
    """ATLAS's memory at its layer's size (4 heads of 16, degree-2 features of width 153): features, values, the
    per-token gates in their domains, and the initial MLP memory."""
    gen = torch.Generator().manual_seed(0)
    x = {n: F.normalize(torch.randn(B, T, ATLAS_H, ATLAS_F, generator=gen), dim=-1) for n in ("q", "k")}
    x["v"] = torch.randn(B, T, ATLAS_H, ATLAS_D, generator=gen)
    gate = {n: torch.randn(B, T, ATLAS_H, generator=gen) for n in ("g", "beta", "g_momentum", "gamma")}
    x.update(g=F.logsigmoid(gate["g"] + 4), beta=0.1 * gate["beta"].sigmoid(),
             g_momentum=F.logsigmoid(gate["g_momentum"]), gamma=gate["gamma"].sigmoid())
    x["w1"] = torch.randn(ATLAS_H, ATLAS_F, ATLAS_D, generator=gen) / ATLAS_F ** 0.5
    x["w2"] = torch.randn(ATLAS_H, ATLAS_D, ATLAS_D, generator=gen) / ATLAS_D ** 0.5
    return {n: t.requires_grad_() for n, t in x.items()}


def _atlas(fn: Callable) -> Callable[..., torch.Tensor]:
    return lambda **x: fn(**x, window=ATLAS_WINDOW, chunk_size=ATLAS_CHUNK)[0]
LMU_ORDER, LMU_THETA = 256, 128.0   # LMUFormer's memory of order 256


def _lmu_inputs(T: int) -> dict[str, torch.Tensor]:
    """One projected input per head into the Legendre memory (LMUFormer's layer has one; 8 here as the others)."""
    gen = torch.Generator().manual_seed(0)
    A, B_ = lmu_system(LMU_ORDER, LMU_THETA, dtype=torch.float32)
    return {"u": torch.randn(B, T, H, generator=gen).requires_grad_(), "A": A, "B": B_}


def _lmu(fn: Callable) -> Callable[..., torch.Tensor]:
    return lambda **x: fn(x["u"], x["A"], x["B"])[0]

FORMS: dict[str, OpForm] = {
    "atlas": OpForm(inputs=_atlas_inputs, fast=_atlas(chunk_atlas), ref=_atlas(recurrent_atlas)),
    "combiner_fixed": _combiner("fixed"),
    "combiner_axial": _combiner("axial"),
    "combiner_logsparse": _combiner("logsparse"),
    "flowformer": OpForm(
        inputs=lambda T: _qkv(T, positive=True),
        fast=lambda q, k, v: flow_attention(q, k, v)[0],
        ref=lambda q, k, v: flow_attention_reference(q, k, v)[0],
    ),
    "kernel_rpe": OpForm(inputs=_kernel_rpe_inputs, fast=fft_kernel_rpe, ref=quadratic_kernel_rpe),
    "lmu_chunk": OpForm(inputs=_lmu_inputs, fast=_lmu(chunk_lmu), ref=_lmu(recurrent_lmu)),
    "lmu_fft": OpForm(inputs=_lmu_inputs, fast=_lmu(fft_lmu), ref=_lmu(recurrent_lmu)),
    "mossformer": OpForm(
        inputs=_mossformer_inputs,
        fast=lambda **x: chunk_mossformer_attention(**x, chunk_size=MOSSFORMER_GROUP)[0],
        ref=lambda **x: recurrent_mossformer_attention(**x, chunk_size=MOSSFORMER_GROUP)[0],
    ),
}
