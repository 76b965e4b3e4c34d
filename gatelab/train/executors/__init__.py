"""Executors: where the runs of a sweep train. ``local`` (the default): in this process, or ``workers`` at a time
in worker processes on this machine; ``ray``: each run a Ray task, on a Ray started for the sweep or on an existing
cluster. Every executor trains a run by the sweep's own function into the run's own folder, and sends its progress
back to the sweep process, which only reads run folders."""
from __future__ import annotations

import torch

from ...config import ConfigError
from .base import Executor, Job, RunsFailed
from .local import LocalExecutor
from .on_ray import RayExecutor

EXECUTORS = ("local", "ray")

__all__ = ["EXECUTORS", "Executor", "Job", "LocalExecutor", "RayExecutor", "RunsFailed", "make_executor"]


def make_executor(kind: str = "local", workers: int | None = None, address: str | None = None,
                  cpus_per_run: int | None = None, gpus_per_run: float | None = None, keep_going: bool = False,
                  device: str = "cpu") -> Executor:
    """The executor the command line asks for (None: a flag not given), checked before anything trains: flags
    of the other executor are refused, not ignored, and ``ray``'s GPUs must match the runs' ``device``."""
    if kind not in EXECUTORS:
        raise ConfigError(f"--executor {kind!r}: choose from {', '.join(EXECUTORS)}")
    ray_flags = [flag for flag, value in (("--address", address), ("--cpus-per-run", cpus_per_run),
                                          ("--gpus-per-run", gpus_per_run)) if value is not None]
    if kind == "local":
        if ray_flags:
            verb = "applies" if len(ray_flags) == 1 else "apply"
            raise ConfigError(f"{', '.join(ray_flags)} {verb} to --executor ray (this is --executor local)")
        return LocalExecutor(1 if workers is None else workers, keep_going)
    if workers is not None:
        raise ConfigError("--workers applies to --executor local; with --executor ray each run is a task of "
                          "--cpus-per-run CPUs, and as many train at a time as the Ray's CPUs hold")
    executor = RayExecutor(address, 1 if cpus_per_run is None else cpus_per_run,
                           0.0 if gpus_per_run is None else gpus_per_run, keep_going)
    on_gpu = torch.device(device).type == "cuda"
    if executor.gpus > 0 and not on_gpu:
        raise ConfigError(f"--gpus-per-run {executor.gpus:g} reserves GPUs for runs on device={device!r}; runs "
                          "train on them with device=cuda (gatelab compare --set device=cuda)")
    if on_gpu and executor.gpus == 0:
        raise ConfigError(f"device={device!r} needs a GPU per run on Ray: give --gpus-per-run (1, or a fraction "
                          "such as 0.5 to share a GPU)")
    return executor
