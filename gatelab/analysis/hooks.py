"""Forward hooks on named modules, removed on exit: how analysis reads a model without editing its layers."""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn


def first_tensor(output) -> torch.Tensor:
    """A module's main output: the tensor itself, or the first element of a (tensor, state) pair."""
    return output[0] if isinstance(output, (tuple, list)) else output


@contextlib.contextmanager
def hooked(model: nn.Module, names: list[str], fn: Callable[[str, torch.Tensor], None],
           read: Callable[[Any], torch.Tensor] = first_tensor) -> Iterator[None]:
    """While active, ``fn(name, read(output))`` sees (detached) the output of each named module on every forward;
    ``read`` picks the tensor from the output (default: ``first_tensor``)."""
    modules = dict(model.named_modules())
    missing = [n for n in names if n not in modules]
    if missing:
        raise KeyError(f"no module named {missing[0]!r} in the model")
    handles = [modules[n].register_forward_hook(lambda m, i, o, n=n: fn(n, read(o).detach()))
               for n in names]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def names_ending(model: nn.Module, suffix: str) -> list[str]:
    return [n for n, _ in model.named_modules() if n.endswith(suffix)]
