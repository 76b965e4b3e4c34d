"""Reversing right-padded sequences in time: the reverse scan of a bidirectional mixer."""
from __future__ import annotations

import torch


def flip_padded(x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """``x [B, T, ...]`` with each sequence's first ``lengths[b]`` positions reversed and its padding left in place
    (all T reversed when ``lengths`` is None). Its own inverse: a reverse scan over ``flip_padded(x)`` reads the
    real tokens last-to-first and never carries a pad into a real position's state."""
    if lengths is None:
        return x.flip(1)
    T = x.shape[1]
    t = torch.arange(T, device=x.device)                                          # (T,)
    lengths = lengths.to(x.device)[:, None]                                       # (B, 1)
    index = torch.where(t < lengths, lengths - 1 - t, t)                          # (B, T)
    index = index.view(*index.shape, *([1] * (x.dim() - 2))).expand_as(x)         # (B, T, ...)
    return x.gather(1, index)
