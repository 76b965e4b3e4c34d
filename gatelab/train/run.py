"""Run folders: resolved config, provenance (git commit, versions, device), metrics.jsonl, atomic writes."""
from __future__ import annotations

import functools
import json
import platform
import shutil
import subprocess
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import ConfigError
from ..ops.backend import backend_record
from .checkpoint import CHECKPOINT, LEGACY_CHECKPOINT
from .files import read_json, remove_orphan_temps, write_json_atomic
from .tracking import TENSORBOARD_DIR, TRACKING_FILE, Tracker, check_available, numeric, open_trackers

__all__ = ["NONFINITE_BATCH", "RunDir", "device_name", "differences", "environment", "git_commit", "stored_config",
           "what_it_computes", "write_json_atomic"]


@functools.cache
def git_commit() -> str:
    """The commit of the source tree gatelab runs from (``+dirty`` if it has uncommitted changes), or 'unknown'.

    Read once per process, so every run of a long sweep records the code the process loaded, not the commits
    made to the tree while it ran."""
    root = Path(__file__).resolve().parents[2]
    try:
        def git(*args: str) -> str:
            return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout.strip()

        sha, dirty = git("rev-parse", "HEAD"), git("status", "--porcelain", "--untracked-files=no")
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def device_name(device: str | torch.device) -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def environment(device: str | torch.device = "cpu") -> dict[str, Any]:
    """Provenance recorded with every run and every benchmark row."""
    import gatelab

    return {
        "git_commit": git_commit(),
        "gatelab": gatelab.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "device": device_name(device),
    }


def differences(stored: dict[str, Any], config: dict[str, Any], prefix: str = "") -> list[tuple[str, Any, Any]]:
    """The dotted keys whose values differ between two (nested) configs, with the stored and the new value."""
    out = []
    for k in sorted(set(stored) | set(config)):
        a, b = stored.get(k), config.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += differences(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append((f"{prefix}{k}", a, b))
    return out


TRACKING_FIELDS = ("log", "mlflow_uri")    # where a run's metrics are mirrored: not what it computes


def what_it_computes(config: dict[str, Any]) -> dict[str, Any]:
    """A stored config without the fields that only say how often the run saved itself along the way and where
    its metrics are mirrored."""
    return {k: v for k, v in config.items() if k != "checkpoint_every" and k not in TRACKING_FIELDS}


def _listed(diff: list[tuple[str, Any, Any]]) -> str:
    shown = "; ".join(f"{key}: {a!r} there, {b!r} here" for key, a, b in diff[:4])
    return shown + (f"; and {len(diff) - 4} more" if len(diff) > 4 else "")


def stored_config(folder: str | Path) -> dict[str, Any] | None:
    """The resolved config stored in a run folder (fields added since it was written at their defaults), or None
    if it has none; one that cannot be read is a ConfigError naming the file."""
    from .config import TrainConfig

    path = Path(folder) / "config.json"
    if not path.exists():
        return None
    try:
        return TrainConfig.stored(path)
    except (UnicodeDecodeError, ValueError) as e:
        raise ConfigError(f"{path} is not a readable run configuration ({e})") from e


NONFINITE_BATCH = "nonfinite_batch.safetensors"      # the batch a run diverged on
# What a finished (or diverged) run adds, and what is measured on its final model: gone once the run trains again.
FINISHED = ("result.json", "model", "model.safetensors", "analysis", "measure.json", NONFINITE_BATCH,
            "nonfinite_batch.pt")
# Everything a run writes into its folder (besides its lock), cleared when the folder starts a new run.
OUTPUTS = ("config.json", "meta.json", "metrics.jsonl", "tokenizer.json", CHECKPOINT, LEGACY_CHECKPOINT,
           "checkpoints", TRACKING_FILE, TENSORBOARD_DIR, *FINISHED)


class RunDir:
    """A run's folder: ``config.json``, ``meta.json``, ``metrics.jsonl``, ``result.json``, and the trained model in
    ``model/`` (a language model, in Hugging Face format) or ``model.safetensors`` (a classifier or forecaster).
    A folder holds one resolved configuration: starting a run of another one in it is an error unless asked to
    overwrite, and a new start clears every output of the run before.

    Every line written to ``metrics.jsonl`` is also sent to the trackers the config's ``log`` names (TensorBoard,
    MLflow; see ``gatelab.train.tracking``), opened by ``start`` and ``resume`` and closed by ``finish``."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.trackers: list[Tracker] = []

    def conflict(self, config: dict[str, Any]) -> str | None:
        """Why this folder may not take a run of ``config`` without overwriting (None if it may): it holds a
        run of another configuration (however often either saves a checkpoint), or outputs without a config."""
        stored = stored_config(self.path)
        if stored is None:
            found = [name for name in OUTPUTS if (self.path / name).exists()]
            return f"{self.path} holds run outputs ({', '.join(found)}) but no config.json" if found else None
        diff = differences(what_it_computes(stored), what_it_computes(config))
        return f"{self.path} holds a run of another configuration ({_listed(diff)})" if diff else None

    def clear(self, names: tuple[str, ...] = OUTPUTS) -> None:
        """Remove the named outputs and any temporary file a killed writer left behind."""
        for name in names:
            path = self.path / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        remove_orphan_temps(self.path)
        remove_orphan_temps(self.path / "checkpoints")

    def start(self, config: dict[str, Any], device: str, overwrite: bool = False) -> None:
        """Begin a new run of ``config`` here, from step 0: refuse a folder of another configuration (ConfigError)
        unless ``overwrite``, then clear the previous run's outputs, so none of them outlives it."""
        problem = None if overwrite else self.conflict(config)
        if problem:
            raise ConfigError(f"{problem}; pass --overwrite (overwrite=True) to replace it, or use another folder")
        check_available(config.get("log") or [])
        backend = backend_record(config.get("backend", "auto"), device)   # what the chunked ops run on, or why not
        self.clear()
        write_json_atomic(self.path / "config.json", config)
        write_json_atomic(self.path / "meta.json", {**environment(device), **backend})
        (self.path / "metrics.jsonl").write_text("")
        self._track(config, None)

    def resume(self, step: int, config: dict[str, Any] | None = None) -> None:
        """Continue the run here from its checkpoint at ``step``: drop later metrics (logged again) and the
        outputs of an earlier finish (rewritten when this one finishes). ``config`` (the stored one by default)
        may differ from the stored one only in where metrics are mirrored (``check_config``); it is stored."""
        if config is not None:
            check_available(config.get("log") or [])
            write_json_atomic(self.path / "config.json", config)
        self.clear(FINISHED)
        self.truncate_log(step)
        self._track(config if config is not None else stored_config(self.path) or {}, step)

    def _track(self, config: dict[str, Any], resumed_at: int | None) -> None:
        self.trackers = open_trackers(self.path, config, resumed_at)
        if self.trackers:     # a run that ends without finish (an exception) still flushes its trackers
            self._closer = weakref.finalize(self, _close, self.trackers, True)

    def log(self, record: dict[str, Any]) -> None:
        with open(self.path / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        for tracker in self.trackers:
            tracker.log(numeric(record), record["step"])

    def check_config(self, config: dict[str, Any], stored: dict[str, Any]) -> None:
        """Refuse to continue a run folder with a different configuration (``stored``: its config as read)."""
        diff = [d for d in differences(stored, config) if d[0] not in TRACKING_FIELDS]
        if diff:
            raise ConfigError(f"{self.path} holds a run of another configuration ({_listed(diff)}); a run resumes "
                              "with the configuration it started with")

    def truncate_log(self, step: int) -> None:
        """Drop metrics logged after ``step`` (a resumed run logs them again)."""
        path = self.path / "metrics.jsonl"
        keep = [line for line in path.read_text().splitlines() if json.loads(line)["step"] <= step]
        path.write_text("".join(line + "\n" for line in keep))

    def finish(self, result: dict[str, Any]) -> None:
        write_json_atomic(self.path / "result.json", result)
        self.close_trackers(failed=bool(result.get("diverged")))

    def close_trackers(self, failed: bool = True) -> None:
        """Close the trackers still open: at ``finish``, or when the run ends without finishing (an exception),
        marked failed; nothing once they are closed."""
        if self.trackers:
            self._closer.detach()
            _close(self.trackers, failed)
            self.trackers = []

    def result(self) -> dict[str, Any] | None:
        """The finished (or diverged) run's result, or None if it never finished."""
        path = self.path / "result.json"
        return read_json(path) if path.exists() else None


def _close(trackers: list[Tracker], failed: bool) -> None:
    for tracker in trackers:
        tracker.close(failed)
