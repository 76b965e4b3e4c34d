"""Run folders: resolved config, provenance (git commit, versions, device), metrics.jsonl, atomic writes."""
from __future__ import annotations

import functools
import json
import os
import platform
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch


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


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON through a temporary file and a rename, so a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


class RunDir:
    """A run's folder: ``config.json``, ``meta.json``, ``metrics.jsonl``, ``result.json``, and the trained model in
    ``model/`` (Hugging Face format)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)

    def start(self, config: dict[str, Any], device: str) -> None:
        write_json_atomic(self.path / "config.json", config)
        write_json_atomic(self.path / "meta.json", environment(device))
        (self.path / "metrics.jsonl").write_text("")

    def log(self, record: dict[str, Any]) -> None:
        with open(self.path / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")

    def check_config(self, config: dict[str, Any], stored: dict[str, Any]) -> None:
        """Refuse to continue a run folder with a different configuration (``stored``: its config as read)."""
        if stored != config:
            diff = sorted(k for k in set(stored) | set(config) if stored.get(k) != config.get(k))
            raise ValueError(f"{self.path} holds a run of another configuration (differs in {', '.join(diff)})")

    def truncate_log(self, step: int) -> None:
        """Drop metrics logged after ``step`` (a resumed run logs them again)."""
        path = self.path / "metrics.jsonl"
        keep = [line for line in path.read_text().splitlines() if json.loads(line)["step"] <= step]
        path.write_text("".join(line + "\n" for line in keep))

    def finish(self, result: dict[str, Any]) -> None:
        write_json_atomic(self.path / "result.json", result)

    def result(self) -> dict[str, Any] | None:
        """The finished run's result, or None if it never finished."""
        path = self.path / "result.json"
        return json.loads(path.read_text()) if path.exists() else None
