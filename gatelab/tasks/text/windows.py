"""Token streams cut into model inputs and next-token targets, optionally with a beginning-of-sequence token at
position 0 of every window (so every window starts the same way, where attention sinks form)."""
from __future__ import annotations

import numpy as np
import torch


def windows(stream: torch.Tensor | np.ndarray, seq_len: int, max_tokens: int = 0, bos: int | None = None
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Consecutive windows: inputs and targets ``[N, seq_len]``, every stream token but the first predicted exactly
    once, from at most ``max_tokens`` tokens (0: all). With ``bos``, each window reads ``bos`` and then
    ``seq_len - 1`` stream tokens, and predicts those tokens and the next one."""
    stream = torch.as_tensor(np.asarray(stream, dtype=np.int64)) if isinstance(stream, np.ndarray) else stream
    body = seq_len - (bos is not None)
    if body < 1:
        raise ValueError(f"seq_len={seq_len} leaves no room for text after the BOS token")
    n = (len(stream) - 1) // body
    if max_tokens:
        n = min(n, max(1, max_tokens // seq_len))
    if n == 0:
        raise ValueError(f"the token stream has {len(stream)} tokens, fewer than one window of {body} + 1")
    x = stream[: n * body].view(n, body)
    y = stream[1: n * body + 1].view(n, body)
    if bos is not None:
        x = torch.cat([torch.full((n, 1), bos, dtype=x.dtype), x], dim=1)
        y = torch.cat([x[:, 1:2], y], dim=1)
    return x, y


def random_windows(stream: np.ndarray, starts: np.ndarray, seq_len: int, bos: int | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Training windows at the given start offsets: inputs and targets ``[B, seq_len]`` (``bos`` first if given)."""
    body = seq_len - (bos is not None)
    window = torch.from_numpy(stream[starts[:, None] + np.arange(body + 1)].astype(np.int64))   # (B, body + 1)
    x, y = window[:, :-1], window[:, 1:]
    if bos is not None:
        x = torch.cat([torch.full((len(starts), 1), bos, dtype=x.dtype), x], dim=1)
        y = torch.cat([window[:, :1], y], dim=1)
    return x, y
