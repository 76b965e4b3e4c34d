"""Training checkpoints: model, optimiser, progress and RNG state in one safetensors file, written atomically.

Nothing here unpickles: the tensors (weights, optimiser moments, RNG state) are safetensors entries, and the rest
(progress, the optimiser's hyperparameters and scalar state, tied-weight aliases) is JSON in the file's metadata.
A checkpoint that cannot be read, or that belongs to another model, is a ConfigError naming the file."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file, save_model

from ..config import ConfigError
from .files import atomic_file

CHECKPOINT = "checkpoint.safetensors"
LEGACY_CHECKPOINT = "checkpoint.pt"          # pickled by older versions: never loaded
FORMAT = "gatelab-checkpoint-1"


def first_nonfinite(tensors: dict[str, torch.Tensor]) -> str | None:
    """The name of the first floating-point tensor holding a NaN or an infinity, or None."""
    return next((k for k, v in tensors.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())), None)


def _dedup(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors with each shared one kept once (safetensors refuses shared memory), and name -> kept name for
    the others (tied weights: the LM head shares the embedding)."""
    kept: dict[tuple, str] = {}
    tensors, aliases = {}, {}
    for name, t in state.items():
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.stride(), t.dtype)
        if key in kept:
            aliases[name] = kept[key]
        else:
            kept[key] = name
            tensors[name] = t.detach().cpu().contiguous()
    return tensors, aliases


def save_checkpoint(path: Path, model: torch.nn.Module, opt: torch.optim.Optimizer, progress: dict[str, Any]) -> None:
    """Write everything needed to continue exactly; a kill during the write leaves the previous checkpoint intact.
    Weights with a NaN or an infinity are refused (ValueError): a checkpoint is always one worth resuming."""
    weights, aliases = _dedup(model.state_dict())
    bad = first_nonfinite(weights)
    if bad:
        raise ValueError(f"refusing to write {path}: the weight {bad} holds non-finite values")
    optim = opt.state_dict()
    tensors = {f"model.{k}": v for k, v in weights.items()}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, state in optim["state"].items():
        scalars[str(pid)] = {}
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{pid}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[str(pid)][key] = value
    tensors["rng.torch"] = torch.get_rng_state()
    metadata = {"format": FORMAT, "progress": json.dumps(progress), "aliases": json.dumps(aliases),
                "param_groups": json.dumps(optim["param_groups"]), "optimizer_scalars": json.dumps(scalars)}
    with atomic_file(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def save_weights(model: torch.nn.Module, path: Path) -> None:
    """The model's weights alone, as safetensors, written atomically."""
    with atomic_file(path) as tmp:
        save_model(model, str(tmp))


def read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Every tensor of a safetensors file and its metadata; a truncated or corrupt file is a ConfigError naming
    it."""
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, f.metadata() or {}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as e:
        raise ConfigError(f"{path} is not a readable safetensors file ({e}); it may be truncated or corrupt") from e


def load_checkpoint(path: Path, model: torch.nn.Module, opt: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore model, optimiser and RNG state in place; return the saved progress (step, tokens, metrics)."""
    tensors, meta = read_safetensors(path)
    if meta.get("format") != FORMAT:
        raise ConfigError(f"{path} is not a gatelab checkpoint (its metadata says format {meta.get('format')!r}, "
                          f"expected {FORMAT!r})")
    try:
        weights = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
        weights |= {name: weights[kept] for name, kept in json.loads(meta["aliases"]).items()}
        state: dict[int, dict[str, Any]] = {int(pid): dict(s) for pid, s in
                                            json.loads(meta["optimizer_scalars"]).items()}
        for k, v in tensors.items():
            if k.startswith("optimizer."):
                pid, key = k.removeprefix("optimizer.").split(".", 1)
                state[int(pid)][key] = v
        groups = json.loads(meta["param_groups"])
        for saved, current in zip(groups, opt.param_groups, strict=False):   # JSON turned tuples (betas) into lists
            saved.update({k: tuple(v) for k, v in saved.items() if isinstance(current.get(k), tuple)})
        model.load_state_dict(weights)
        opt.load_state_dict({"state": state, "param_groups": groups})
        torch.set_rng_state(tensors["rng.torch"])
        return json.loads(meta["progress"])
    except (KeyError, ValueError, RuntimeError, TypeError, AttributeError) as e:
        raise ConfigError(f"{path} does not fit this model and optimiser ({e!r})") from e
