"""Training checkpoints: model, optimiser, progress and RNG state, written atomically (temp file + rename)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_model

CHECKPOINT = "checkpoint.pt"


def save_checkpoint(path: Path, model: torch.nn.Module, opt: torch.optim.Optimizer, progress: dict[str, Any]) -> None:
    """Write everything needed to continue exactly; a kill during the write leaves the previous checkpoint intact."""
    state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "progress": progress,
             "torch_rng": torch.get_rng_state()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_weights(model: torch.nn.Module, path: Path) -> None:
    """The model's weights alone, as safetensors, written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_model(model, str(tmp))
    os.replace(tmp, path)


def load_checkpoint(path: Path, model: torch.nn.Module, opt: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore model, optimiser and RNG state in place; return the saved progress (step, tokens, metrics)."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["torch_rng"])
    return state["progress"]
