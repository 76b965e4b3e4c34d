"""Stochastically subsampled self-attention (SSA; Hussain, Zaki and Subramanian 2023, "The Information Pathways
Hypothesis: Transformers are Dynamic Self-Ensembles", KDD 2023, arXiv 2306.01705): in training, each sample attends
to a random subset of the keys, drawn anew at every forward; evaluation attends to all of them.

The paper's code was announced but not released (shamim-hussain/ssa holds a README only), so the rule here is
written from the paper's description: a random subset of the keys per sample, shared by its queries and heads
(the paper gathers the kept keys, which is what makes its training cheaper), unstructured or locally biased.
``local_random`` is our form of the local bias: a sliding window of ``window`` keys (each query's own position and
the ``window - 1`` before it, and after it too without causality) always kept beside the random ones. The mask
keeps every query's own key, so no query is left without one; the causal mask and the padding mask still apply
(``SoftmaxAttention``). Here the subset is a mask over the full score matrix: it regularises as SSA does but saves
no compute.
"""
from __future__ import annotations

from typing import Literal

import torch

Pattern = Literal["unstructured", "local_random"]


def ssa_mask(batch_size: int, Tq: int, Tk: int, rate: float, pattern: Pattern, window: int,
             device: torch.device | None = None) -> torch.Tensor:
    """``[B, 1, Tq, Tk]`` boolean, True where query i (at key position ``Tk - Tq + i``) may see key j: ``round(rate
    * Tk)`` keys drawn uniformly without replacement per sample (at least one), every query's own key, and with
    ``local_random`` every key less than ``window`` positions away. Draws from torch's global generator."""
    n_keep = max(1, round(rate * Tk))
    draw = torch.rand(batch_size, Tk, device=device)                                       # (B, Tk)
    kept = torch.zeros(batch_size, Tk, dtype=torch.bool, device=device)
    kept.scatter_(1, draw.topk(n_keep, dim=1).indices, True)                               # (B, Tk) n_keep True
    rows = torch.arange(Tq, device=device)[:, None] + (Tk - Tq)                            # (Tq, 1) positions
    cols = torch.arange(Tk, device=device)[None, :]                                        # (1, Tk)
    near = (rows - cols).abs() < (window if pattern == "local_random" else 1)              # (Tq, Tk) incl. self
    return (kept[:, None, :] | near)[:, None]                                              # (B, 1, Tq, Tk)
