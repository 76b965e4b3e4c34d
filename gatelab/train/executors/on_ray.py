"""The Ray executor: every run of a sweep is a Ray task with ``cpus_per_run`` CPUs (its torch threads) and
``gpus_per_run`` GPUs, on a Ray started on this machine for the sweep (no dashboard, no usage statistics, quiet
logs) or on an existing cluster (``address``: ``auto``, ``ray://HOST:PORT`` or ``HOST:PORT``).

A task trains its run through the sweep's own function, into the run's own folder (locked, written atomically),
and sends back what the run reported, its host and whether it finished; the sweep process here replays the
reports, writes nothing into run folders and reads the finished ones. On a cluster, ``--out`` must be a folder
that every node shares under the same path, and every node needs gatelab installed (and its data) as here."""
from __future__ import annotations

import dataclasses
import logging
import os
import re
import socket
import traceback
from pathlib import Path
from typing import Any

import torch

import gatelab

from ...config import ConfigError
from ...memory import keep_freed_memory, keeps_freed_memory
from ..progress import RunProgress
from .base import Job, RunsFailed, TrainOne

_ADDRESS = re.compile(r"^(ray://)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?):(\d{1,5})$")


def import_ray() -> Any:
    """The ``ray`` module, or a ConfigError that says how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError('--executor ray needs Ray: pip install -e ".[ray]"') from None
    return ray


def check_address(address: str) -> None:
    """A ConfigError unless ``address`` is ``auto``, ``ray://HOST:PORT`` or ``HOST:PORT`` (port 1-65535)."""
    match = _ADDRESS.match(address)
    if address != "auto" and not (match and 1 <= int(match.group(4)) <= 65535):
        raise ConfigError(f"--address {address!r} is not a Ray address: give auto (the cluster this machine is a "
                          "node of), ray://HOST:PORT (a cluster's Ray Client server, port 10001 by default) or "
                          "HOST:PORT (its head node, port 6379 by default)")


def local_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class RecordedProgress(RunProgress):
    """A Ray task's reporter: keeps the run's reports (of its steps only the last) to be replayed by the sweep."""

    def __init__(self) -> None:
        self.events: list[tuple[str, tuple]] = []

    def _add(self, kind: str, *args: Any) -> None:
        if kind == "stepped" and self.events and self.events[-1][0] == "stepped":
            self.events.pop()
        self.events.append((kind, args))

    def started(self, name: str, step: int, total: int) -> None:
        self._add("started", name, step, total)

    def stepped(self, name: str, step: int, total: int, loss: float, evals: dict[str, float]) -> None:
        self._add("stepped", name, step, total, loss, evals)

    def ended(self, name: str, result: dict[str, Any]) -> None:
        self._add("ended", name, result)

    def note(self, name: str, text: str) -> None:
        self._add("note", name, text)


def train_task(train_one: TrainOne, job: Job, threads: int, keep_memory: bool) -> dict[str, Any]:
    """The body of a Ray task: train ``job`` on ``threads`` torch threads. Returns its reports, the traceback if
    it raised (None otherwise), the host it ran on and whether its run folder there holds a result."""
    torch.set_num_threads(threads)
    if keep_memory:
        keep_freed_memory()
    progress = RecordedProgress()
    try:
        train_one(job.run_dir, job.config, progress, job.overwrite)
        error = None
    except Exception:
        error = traceback.format_exc()
    return {"events": progress.events, "error": error, "host": socket.gethostname(),
            "finished": (job.run_dir / "result.json").exists()}


class RayExecutor:
    """Each run a Ray task with ``cpus_per_run`` CPUs (and as many torch threads: a run computes exactly what the
    local executor computes on as many threads) and ``gpus_per_run`` GPUs (fractions share a GPU). ``address``:
    an existing cluster; None starts a Ray on this machine for the sweep with all of its CPUs and GPUs (or uses the
    Ray this process already started), which ends with the sweep. The first failure cancels the other tasks and is
    raised (RunsFailed, with the task's traceback); ``keep_going`` trains every run and raises the failures at the
    end. A run folder that finished on a node but cannot be seen here is an error (``--out`` is not shared)."""

    def __init__(self, address: str | None = None, cpus_per_run: int = 1, gpus_per_run: float = 0.0,
                 keep_going: bool = False):
        if cpus_per_run < 1:
            raise ConfigError(f"--cpus-per-run {cpus_per_run}: it must be an integer >= 1 (each run's torch threads)")
        if not gpus_per_run >= 0:
            raise ConfigError(f"--gpus-per-run {gpus_per_run}: it must be a number >= 0 (fractions share a GPU)")
        if address is not None:
            check_address(address)
        else:
            check_fits_here(cpus_per_run, gpus_per_run)
        self.ray = import_ray()
        self.address, self.cpus, self.gpus, self.keep_going = address, cpus_per_run, gpus_per_run, keep_going

    def _start(self) -> bool:
        """Connect to the cluster, or start a local Ray; True if this executor started (and so ends) it."""
        ray = self.ray
        if ray.is_initialized():
            return False
        quiet = {"log_to_driver": False, "logging_level": logging.ERROR}
        if self.address is not None:
            try:
                ray.init(address=self.address, **quiet)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise ConfigError(f"--address {self.address}: no Ray cluster could be reached there ({e}); a "
                                  "cluster with token authentication also needs its token here (Ray's "
                                  "RAY_AUTH_TOKEN)") from None
            try:
                check_a_node_fits([n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")], self.cpus,
                                  self.gpus, self.address)
            except ConfigError:
                ray.shutdown()
                raise
            return True
        os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
        # "local": a new Ray even where `ray start` left one running; runs pass only configs and small results
        # through the object store
        ray.init(address="local", num_cpus=local_cpus(), num_gpus=torch.cuda.device_count(),
                 object_store_memory=100 * 2**20, include_dashboard=False, **quiet)
        return True

    def _options(self) -> dict[str, Any]:
        """The task's resources and, on this machine, a PYTHONPATH that imports the gatelab this process runs."""
        options: dict[str, Any] = {"num_cpus": self.cpus, "num_gpus": self.gpus}
        if self.address is None:
            root = str(Path(gatelab.__file__).resolve().parents[1])
            path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
            options["runtime_env"] = {"env_vars": {"PYTHONPATH": path}}
        return options

    def run(self, train_one: TrainOne, jobs: list[Job], reporter: RunProgress) -> None:
        ray = self.ray
        started = self._start()
        task = ray.remote(train_task).options(**self._options())
        pending: dict[Any, Job] = {}
        failures: list[tuple[str, str]] = []
        try:
            for job in jobs:
                job = dataclasses.replace(job, run_dir=job.run_dir.absolute())     # (a task's cwd is not ours)
                pending[task.remote(train_one, job, self.cpus, keeps_freed_memory())] = job
            while pending and not (failures and not self.keep_going):
                [ref], _ = ray.wait(list(pending), num_returns=1)
                job = pending.pop(ref)
                try:
                    out = ray.get(ref)
                except ray.exceptions.RayError as e:          # the task could not run: its worker died, say
                    failures.append((job.name, str(e)))
                    continue
                for kind, args in out["events"]:
                    getattr(reporter, kind)(*args)
                if out["error"] is not None:
                    failures.append((job.name, out["error"]))
                elif out["finished"] and not (job.run_dir / "result.json").exists():
                    raise ConfigError(f"run {job.name} finished on {out['host']}, but its folder {job.run_dir} "
                                      "cannot be seen here: on a cluster, --out must be a folder every node shares "
                                      "under the same path")
        finally:
            for ref in pending:
                ray.cancel(ref)
            if pending:        # let cancelled runs stop (and release their folders) before Ray ends
                ray.wait(list(pending), num_returns=len(pending), timeout=60)
            if started:
                ray.shutdown()
        if failures:
            raise RunsFailed(failures, stopped=not self.keep_going, total=len(jobs))


def check_a_node_fits(nodes: list[dict[str, float]], cpus_per_run: int, gpus_per_run: float, address: str) -> None:
    """A run's resources must fit one live node of the cluster (``nodes``: each node's resources, as Ray lists
    them), else its task would wait for ever for a node (an autoscaling cluster may add one; this checks the nodes
    it has now)."""
    if any(node.get("CPU", 0) >= cpus_per_run and node.get("GPU", 0) >= gpus_per_run for node in nodes):
        return
    have = ", ".join(f"{node.get('CPU', 0):g} CPUs/{node.get('GPU', 0):g} GPUs" for node in nodes) or "no live node"
    raise ConfigError(f"--address {address}: no node of the cluster has --cpus-per-run {cpus_per_run} CPUs and "
                      f"--gpus-per-run {gpus_per_run:g} GPUs for a run (its nodes: {have}); ask for less "
                      "per run")


def check_fits_here(cpus_per_run: int, gpus_per_run: float) -> None:
    """A run's resources must fit this machine (else its task would wait for ever)."""
    if cpus_per_run > local_cpus():
        raise ConfigError(f"--cpus-per-run {cpus_per_run}: this machine has {local_cpus()} CPUs")
    if gpus_per_run > 0 and not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else "no GPU found"
        raise ConfigError(f"--gpus-per-run {gpus_per_run:g}, but CUDA is not available here (torch "
                          f"{torch.__version__}, {build}); use --gpus-per-run 0, or --address to run on a cluster "
                          "with GPUs")
    if gpus_per_run > torch.cuda.device_count():
        raise ConfigError(f"--gpus-per-run {gpus_per_run:g}: this machine has {torch.cuda.device_count()} GPUs")
