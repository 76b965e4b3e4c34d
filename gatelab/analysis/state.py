"""What a model holds in memory while decoding: the bytes of its per-layer states (KV caches, recurrent states,
short-convolution tails) after a context."""
from __future__ import annotations

import dataclasses

import torch


def state_bytes(states) -> int:
    """Bytes held by every tensor inside the (nested) per-layer states."""
    total = 0

    def visit(obj):
        nonlocal total
        if isinstance(obj, torch.Tensor):
            total += obj.numel() * obj.element_size()
        elif dataclasses.is_dataclass(obj):
            for f in dataclasses.fields(obj):
                visit(getattr(obj, f.name))
        elif isinstance(obj, (list, tuple)):
            for item in obj:
                visit(item)

    visit(states)
    return total
