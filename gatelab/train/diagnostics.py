"""What to say when training goes wrong: the first layer whose output stopped being finite."""
from __future__ import annotations

import torch
from torch import nn


def _finite(output) -> bool:
    if isinstance(output, torch.Tensor):
        return bool(torch.isfinite(output).all()) if output.is_floating_point() else True
    if isinstance(output, (tuple, list)):
        return all(_finite(o) for o in output)
    return True


@torch.no_grad()
def first_nonfinite_module(model: nn.Module, inputs: torch.Tensor) -> str | None:
    """Run ``model(inputs)`` with forward hooks and return the name of the first module (in execution order,
    innermost first) whose output holds a NaN or infinity, or None if every output is finite."""
    found: list[str] = []
    hooks = [module.register_forward_hook(lambda m, i, o, name=name: found.append(name) if not _finite(o) else None)
             for name, module in model.named_modules() if name]
    try:
        model(inputs)
    finally:
        for h in hooks:
            h.remove()
    return found[0] if found else None
