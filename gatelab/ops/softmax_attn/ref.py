"""Softmax attention, reference form: materialised scores, masked softmax (standard or clipped), GQA.

Legend: B batch, Tq query length, Tk key length, H query heads, Hkv key/value heads, D head dim, Dv value dim.
"""
from __future__ import annotations

import torch


def clipped_softmax(scores: torch.Tensor, dim: int = -1, gamma: float = 0.0, zeta: float = 1.0) -> torch.Tensor:
    """Clipped softmax (Bondarenko et al. 2023, "Quantizable Transformers", Eq. 4).

    ``clip((zeta - gamma) * softmax(scores) + gamma, 0, 1)`` with stretch ``zeta >= 1`` and ``gamma <= 0``.
    Probabilities below ``-gamma / (zeta - gamma)`` become exactly 0 (and get no gradient), so a head can
    attend to nothing without pushing its logits to infinity. ``gamma = 0, zeta = 1`` is the plain softmax.
    Rows are not renormalised after clipping.
    """
    if gamma > 0 or zeta < 1:
        raise ValueError(f"clipped_softmax: needs gamma <= 0 and zeta >= 1; got gamma={gamma}, zeta={zeta}")
    probs = scores.softmax(dim)
    if gamma == 0.0 and zeta == 1.0:
        return probs
    return ((zeta - gamma) * probs + gamma).clamp(0.0, 1.0)


def clip_gamma_for_length(alpha: float, seq_len: int) -> float:
    """The length-generalising choice ``gamma = -alpha / T`` of Quantizable Transformers (alpha in [2, 4] works)."""
    if alpha < 0 or seq_len < 1:
        raise ValueError(f"clip_gamma_for_length: needs alpha >= 0 and seq_len >= 1; got {alpha}, {seq_len}")
    return -alpha / seq_len


def causal_mask(Tq: int, Tk: int, device: torch.device | None = None, window: int | None = None) -> torch.Tensor:
    """``[Tq, Tk]`` boolean mask, True where query i (at position Tk - Tq + i) may see key j: ``j <= i``, and with a
    sliding ``window`` also ``j > i - window`` (each query sees itself and the window - 1 keys before it)."""
    rows = torch.arange(Tq, device=device).unsqueeze(1) + (Tk - Tq)   # (Tq, 1) positions of the queries
    cols = torch.arange(Tk, device=device).unsqueeze(0)                # (1, Tk)
    mask = cols <= rows                                                # (Tq, Tk)
    return mask if window is None else mask & (cols > rows - window)


def check_attention_inputs(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        shapes = ", ".join(str(tuple(x.shape)) for x in (q, k, v))
        raise ValueError(f"attention: q, k, v must be [B, T, H, D]; got {shapes}")
    if k.shape[:3] != v.shape[:3] or q.shape[0] != k.shape[0] or q.shape[-1] != k.shape[-1]:
        raise ValueError(f"attention: incompatible q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}")
    if q.shape[2] % k.shape[2] != 0:
        raise ValueError(f"attention: query heads ({q.shape[2]}) must be a multiple of key/value heads ({k.shape[2]})")
    if q.shape[1] > k.shape[1]:
        raise ValueError(f"attention: more queries ({q.shape[1]}) than keys ({k.shape[1]})")


def attention_scores(q: torch.Tensor, k: torch.Tensor, scale: float | None = None) -> torch.Tensor:
    """Scaled scores ``s q k^T`` ``[B, H, Tq, Tk]`` before any mask, keys shared over query groups (GQA).
    q ``[B, Tq, H, D]``, k ``[B, Tk, Hkv, D]``; ``scale`` defaults to ``D ** -0.5``."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    k = k.repeat_interleave(q.shape[2] // k.shape[2], dim=2)           # (B, Tk, H, D)
    return torch.einsum("bqhd,bkhd->bhqk", q, k) * scale               # (B, H, Tq, Tk)


def attention_probs(scores: torch.Tensor, *, causal: bool = True, window: int | None = None, gamma: float = 0.0,
                    zeta: float = 1.0, key_mask: torch.Tensor | None = None) -> torch.Tensor:
    """The (clipped) softmax of ``scores [B, H, Tq, Tk]`` over keys, after the causal (and window) mask and the
    padding mask ``key_mask [B, Tk]`` (True at real keys)."""
    if causal:
        mask = causal_mask(scores.shape[-2], scores.shape[-1], scores.device, window)
        scores = scores.masked_fill(~mask, float("-inf"))
    if key_mask is not None:
        scores = scores.masked_fill(~key_mask[:, None, None, :], float("-inf"))
    return clipped_softmax(scores, dim=-1, gamma=gamma, zeta=zeta)      # (B, H, Tq, Tk)


def attention_mix(probs: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The values weighted by ``probs [B, H, Tq, Tk]``: ``o [B, Tq, H, Dv]`` from v ``[B, Tk, Hkv, Dv]``."""
    v = v.repeat_interleave(probs.shape[1] // v.shape[2], dim=2)       # (B, Tk, H, Dv)
    return torch.einsum("bhqk,bkhd->bqhd", probs, v)                   # (B, Tq, H, Dv)


def softmax_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    scale: float | None = None,
    causal: bool = True,
    window: int | None = None,
    gamma: float = 0.0,
    zeta: float = 1.0,
    key_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax attention with materialised probabilities (the reference, and the path for clipped softmax):
    ``attention_scores``, then ``attention_probs``, then ``attention_mix``.

    Args:
        q: ``[B, Tq, H, D]``; k: ``[B, Tk, Hkv, D]``; v: ``[B, Tk, Hkv, Dv]`` with ``H % Hkv == 0`` (GQA) and
            ``Tq <= Tk``: the queries are the last Tq positions (a KV cache holds the first ``Tk - Tq``).
        scale: multiplies the scores; default ``D ** -0.5``.
        causal: mask keys after each query's position.
        window: with causal, also mask keys ``window`` or more positions back (sliding-window attention).
        gamma, zeta: clipped-softmax parameters (``clipped_softmax``); the defaults give the plain softmax.
        key_mask: ``[B, Tk]`` bool, True at real keys: padded keys get no attention (each query needs one real key).

    Returns:
        ``o`` ``[B, Tq, H, Dv]`` and the probabilities ``[B, H, Tq, Tk]``.
    """
    check_attention_inputs(q, k, v)
    probs = attention_probs(attention_scores(q, k, scale), causal=causal, window=window, gamma=gamma, zeta=zeta,
                            key_mask=key_mask)
    return attention_mix(probs, v), probs
