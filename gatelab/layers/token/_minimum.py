"""The reductions of softmax attention in "Reducing the Transformer Architecture to a Minimum" (Bermeitinger et al.
2024, arXiv 2410.13732) as options of ``attn`` (each off by default; d = d_model, H heads of D dims, Hkv kv heads):

- ``qk_merged``: one ``d x d`` matrix per head in place of ``W_Q^h W_K^hT``: scores ``x_i W_QK^h x_j^T / sqrt(D)``
  (the scale of the unmerged form, so a merged ``W_Q W_K^T`` gives the same scores). q_proj is ``Linear(d, H d)``
  (head h's block is ``W_QK^hT``), there is no k_proj, and the key is x itself (one key head of width d, held
  once in the KV cache: ``state_size`` is ``T (d + Hkv D)``). q and k cost ``H d^2``: more than the unmerged
  ``2 d H D`` when H > 2 (the paper's point: merging saves parameters with one head, not with many). RoPE and
  QK-norm act on a query and a key of their own, which the merged form has not: either with it is an error.
- ``symmetric``: a symmetric similarity ``s_ij = s_ji``, the paper's remedy for a token that may be dissimilar to
  itself, with half the parameters. Unmerged: ``W_K = W_Q`` (no k_proj; k is q, after the one QK-norm if any;
  scores ``x_i W W^T x_j^T``, so also ``s_ij <= sqrt(s_ii s_jj)``; RoPE keeps them symmetric, since
  ``<R_i a, R_j b> = <R_j b, R_i a>``), which needs ``n_kv_heads == n_heads``; q and k cost ``d H D``, QK-norm
  ``D``. Merged: each ``W_QK^h`` symmetric, held by its upper triangle (``SymmetricMerged``): ``H d (d + 1) / 2``.
- ``no_value``: ``W_V`` is the identity: value head j is slice ``[j D, (j + 1) D)`` of x, which needs
  ``Hkv D == d``; no v_proj.
- ``no_output``: ``W_O`` is the identity: the heads' outputs, concatenated, are the output, which needs
  ``H D == d``; no o_proj. With both, each head's output is a convex combination of its own slice of the inputs.

The paper also drops the MLP blocks (``model.channel=none``). The definitions follow the paper's abstract and a
survey's notes (its full text was not at hand here): the two symmetric forms are our reading of "a symmetric
definition requires only half of the parameters". This module holds the rules (``check_reductions``), the
symmetric merged matrices and the query-key parameter count."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..base import require


class SymmetricMerged(nn.Module):
    """``n_heads`` symmetric ``d x d`` matrices ``S_h`` held by their upper triangles (``d (d + 1) / 2`` parameters
    each, ``weight [n_heads, d (d + 1) / 2]``, uniform in ``+-1/sqrt(d)`` as an ``nn.Linear(d, d)``).
    ``forward(x [B, T, d]) -> [B, T, n_heads, d]``: ``x S_h`` per head (the merged query; the key is x)."""

    def __init__(self, d: int, n_heads: int):
        super().__init__()
        self.d = d
        rows, cols = torch.triu_indices(d, d)
        self.register_buffer("rows", rows, persistent=False)
        self.register_buffer("cols", cols, persistent=False)
        self.weight = nn.Parameter(torch.empty(n_heads, rows.numel()).uniform_(-d ** -0.5, d ** -0.5))

    def matrices(self) -> torch.Tensor:
        """The symmetric matrices ``[n_heads, d, d]``."""
        upper = self.weight.new_zeros(self.weight.shape[0], self.d, self.d)           # (H, d, d)
        upper[:, self.rows, self.cols] = self.weight                                  # the upper triangle
        return upper + upper.triu(1).transpose(1, 2)                                  # (H, d, d) symmetric

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("btd,hde->bthe", x, self.matrices())                     # (B, T, H, d)


def check_reductions(cfg: Any, d_model: int) -> None:
    """ConfigErrors for the reductions ``cfg`` (an ``AttentionConfig`` with n_kv_heads and head_dim resolved)
    cannot take, each naming the options involved."""
    H, Hkv, D = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
    reduced = [name for name in ("qk_merged", "symmetric", "no_value", "no_output") if getattr(cfg, name)]
    require(not reduced or cfg.n_chains == 1, f"{', '.join(reduced)} with n_chains={cfg.n_chains}: the reduced "
            "projections are not offered in Chain-of-Model form; use n_chains=1")
    require(not reduced or cfg.bias == "none", f"{', '.join(reduced)} with bias={cfg.bias!r}: the reduced "
            "projections have no biases; use bias='none'")
    require(not (cfg.qk_merged and cfg.rope), "qk_merged=True with rope=True: RoPE rotates a query and a key of "
            "their own, and the merged form has none (its key is the input); set rope=False")
    require(not (cfg.qk_merged and cfg.qk_norm), "qk_merged=True with qk_norm=True: the merged form has no query "
            "or key of head_dim to normalise; set qk_norm=False")
    require(not cfg.symmetric or cfg.qk_merged or Hkv == H, f"symmetric=True with n_kv_heads={Hkv} < n_heads={H}: "
            "a shared query-key projection gives every head its own key; set n_kv_heads=n_heads")
    require(not cfg.no_value or d_model == Hkv * D, f"no_value=True needs n_kv_heads * head_dim == d_model (each "
            f"value head is its slice of x); got {Hkv} * {D} != {d_model}")
    require(not cfg.no_output or d_model == H * D, f"no_output=True needs n_heads * head_dim == d_model (the heads' "
            f"outputs, concatenated, are the output); got {H} * {D} != {d_model}")


def query_key_params(cfg: Any, d_model: int) -> int:
    """Parameters of the query and key projections (without QK-norm) under the reductions of ``cfg``."""
    H, Hkv, D = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
    if cfg.qk_merged:
        return H * (d_model * (d_model + 1) // 2 if cfg.symmetric else d_model * d_model)
    return d_model * H * D + (0 if cfg.symmetric else d_model * Hkv * D)
