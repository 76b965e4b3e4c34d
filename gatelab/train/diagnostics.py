"""What to say when training goes wrong: the first layer whose output, or the first parameter whose gradient,
stopped being finite."""
from __future__ import annotations

import torch
from torch import nn


class TrainingDiverged(FloatingPointError, ValueError):
    """Training stopped on a non-finite loss, gradient or weight before applying it. A FloatingPointError, and a
    ValueError so that the command line reports it as a message."""


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


def first_nonfinite_gradient(model: nn.Module) -> str | None:
    """The first parameter (in the model's order) whose gradient holds a NaN or an infinity, with its layer:
    ``"blocks.1.mixer.q_proj.weight (layer blocks.1.mixer.q_proj, Linear)"``; None if every gradient is finite."""
    modules = dict(model.named_modules())
    for name, p in model.named_parameters():
        if p.grad is not None and not bool(torch.isfinite(p.grad).all()):
            layer = name.rpartition(".")[0]
            return f"{name} (layer {layer or 'the model'}, {type(modules[layer]).__name__})"
    return None
