"""fla's Triton kernels autotune over many launch configurations the first time each shape is seen, compiling every
one of them: minutes on a fresh machine. ``single_config`` keeps one configuration per kernel instead, so the
kernels compile once each; the numbers are unchanged in kind (the same kernels, one launch configuration), and the
timings it gives are fla's without its tuning, said so beside them."""
from __future__ import annotations

import importlib
import sys

OP_MODULES = ("fla.ops.gla", "fla.ops.simple_gla", "fla.ops.gated_delta_rule", "fla.ops.common", "fla.ops.utils")


def _autotuners(obj: object) -> list:
    """The Triton ``Autotuner`` objects in a kernel's wrapper chain (heuristics wrap autotuners and vice versa)."""
    from triton.runtime.autotuner import Autotuner

    found, seen = [], set()
    while obj is not None and id(obj) not in seen:
        seen.add(id(obj))
        if isinstance(obj, Autotuner):
            found.append(obj)
        obj = getattr(obj, "fn", None)
    return found


def single_config() -> int:
    """Keep the first launch configuration of every autotuned kernel in fla's op modules; returns how many kernels
    were changed. Call after fla imports and before any of its kernels runs."""
    for name in OP_MODULES:
        importlib.import_module(name)
    changed = set()
    for name, module in list(sys.modules.items()):
        if not name.startswith("fla.") or module is None:
            continue
        for value in list(vars(module).values()):
            for tuner in _autotuners(value):
                if len(tuner.configs) > 1 and id(tuner) not in changed:
                    tuner.configs = tuner.configs[:1]
                    changed.add(id(tuner))
    return len(changed)
