"""Experiment tracking: every line a run writes to ``metrics.jsonl`` (which stays the record) mirrored to TensorBoard
or to a local MLflow store, with the resolved config. Both are optional extras: ``pip install -e ".[tensorboard]"``,
``pip install -e ".[mlflow]"``.

A tracker is opened on a run folder with the run's config (``open``), receives each metrics line with its step
(``log``) and is closed when the run ends (``close``). A resumed run appends: the tracker learns from which step the
run continues and never records a step twice.

- ``tensorboard``: event files in ``<run>/tensorboard/`` (``tensorboard --logdir <out>`` shows every run of a
  sweep). Scalars are written in float64 (new-style tensor summaries), so they read back exactly; the config goes
  in as hparams (dotted keys) and as a JSON text summary ``config``.
- ``mlflow``: a local store, ``mlflow_uri`` (a ``file:`` URI, a folder, or any URI MLflow takes) or by default
  ``<out>/mlruns``, where ``<out>`` holds the run folders (``<out>/runs/<run>`` of a sweep, or ``<out>/<run>``).
  The experiment is named after ``<out>``, the MLflow run after the run folder; the config goes in as params
  (dotted keys) and as the artifact ``config.json``. The MLflow run's id is kept in ``<run>/tracking.json``.
  A metric key keeps its first ``/`` (MLflow groups charts by it) and has ``.`` for any later one: the file store
  keeps a key as a file path, where ``eval/accuracy`` could not also be the folder of ``eval/accuracy/len16-kv2``.
"""
from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import os
import time
from pathlib import Path
from typing import Any, Protocol

from ..config import ConfigError
from .files import read_json, write_json_atomic

TRACKING_FILE = "tracking.json"
TENSORBOARD_DIR = "tensorboard"
PACKAGES = {"tensorboard": "tensorboard", "mlflow": "mlflow"}        # tracker -> the module it needs (= its extra)


class Tracker(Protocol):
    def open(self, run: Path, config: dict[str, Any], resumed_at: int | None) -> None:
        """Start mirroring the run in folder ``run``; ``resumed_at``: the step a resumed run continues from."""

    def log(self, metrics: dict[str, float], step: int) -> None:
        """Record the numeric metrics of one metrics.jsonl line at ``step``."""

    def close(self, failed: bool = False) -> None:
        """Flush and release; ``failed``: the run ended diverged."""


def check_available(names: list[str]) -> None:
    """A ConfigError naming the extra to install for each tracker whose package is missing (before any training)."""
    for name in names:
        if name not in PACKAGES:
            raise ConfigError(f"log: unknown tracker {name!r}; choose from {', '.join(PACKAGES)}")
        if importlib.util.find_spec(PACKAGES[name]) is None:
            raise ConfigError(f"log={name} needs the {PACKAGES[name]} package, which is not installed: "
                              f"pip install 'gatelab[{name}]' (or pip install -e '.[{name}]' in a checkout)")


def open_trackers(run: Path, config: dict[str, Any], resumed_at: int | None = None) -> list[Tracker]:
    """The trackers ``config["log"]`` names, opened on ``run``."""
    names = list(config.get("log") or [])
    check_available(names)
    trackers: list[Tracker] = []
    try:
        for name in names:
            tracker = TensorBoardTracker() if name == "tensorboard" else MlflowTracker(config.get("mlflow_uri", ""))
            tracker.open(run, config, resumed_at)
            trackers.append(tracker)
    except BaseException:
        for tracker in trackers:      # the ones opened before the one that failed
            tracker.close(True)
        raise
    return trackers


def numeric(record: dict[str, Any]) -> dict[str, float]:
    """The numeric values of a metrics line, without its step."""
    return {k: float(v) for k, v in record.items()
            if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool)}


def mlflow_key(key: str) -> str:
    """``eval/accuracy/len16-kv2`` -> ``eval/accuracy.len16-kv2``: one ``/`` at most (see the module's notes)."""
    head, sep, tail = key.partition("/")
    return head + sep + tail.replace("/", ".")


def flat_config(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"model.d_model": 64, ...}``: nested dicts flattened to dotted keys; lists and None as JSON text."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            out.update(flat_config(value, f"{prefix}{key}."))
        else:
            plain = isinstance(value, (int, float, str)) and value is not None
            out[f"{prefix}{key}"] = value if plain else json.dumps(value)
    return out


class TensorBoardTracker:
    """Event files in ``<run>/tensorboard/`` through ``torch.utils.tensorboard.SummaryWriter``."""

    def open(self, run: Path, config: dict[str, Any], resumed_at: int | None) -> None:
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams

        folder = run / TENSORBOARD_DIR
        new = not folder.exists()
        # Each opening marks a session start at the step it continues from: TensorBoard takes the first one as the
        # start and any later one as a restart, hiding the steps a killed process wrote after its checkpoint.
        self.writer = SummaryWriter(str(folder), purge_step=0 if resumed_at is None else resumed_at + 1)
        if new:
            for summary in hparams(flat_config(config), {}):
                self.writer.file_writer.add_summary(summary)
            self.writer.add_text("config", "```json\n" + json.dumps(config, indent=2) + "\n```")
            self.writer.flush()

    def log(self, metrics: dict[str, float], step: int) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step, new_style=True, double_precision=True)
        self.writer.flush()

    def close(self, failed: bool = False) -> None:
        self.writer.close()


def mlflow_store(run: Path, uri: str) -> tuple[str, str]:
    """The tracking URI and experiment name of run folder ``run``: ``uri`` (a folder becomes a file URI) or
    ``<out>/mlruns``, and ``<out>``'s name, where ``<out>`` holds the run folders."""
    out = run.resolve().parent
    if out.name == "runs" and out.parent != out:
        out = out.parent
    if not uri:
        uri = (out / "mlruns").as_uri()
    elif "://" not in uri and not uri.startswith("file:"):
        uri = Path(uri).resolve().as_uri()
    return uri, out.name or "gatelab"


@contextlib.contextmanager
def _store_lock(uri: str):
    """Processes of one sweep creating the experiment of a file store one at a time (the store has no lock)."""
    if not uri.startswith("file:"):
        yield
        return
    from urllib.parse import unquote, urlparse

    root = Path(unquote(urlparse(uri).path))
    root.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f".{root.name}.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


class MlflowTracker:
    """One MLflow run per run folder in a local store, through ``MlflowClient`` (no server, no network)."""

    def __init__(self, uri: str = ""):
        self.uri = uri

    def open(self, run: Path, config: dict[str, Any], resumed_at: int | None) -> None:
        # The file store is in maintenance mode in MLflow 3 and refused unless allowed; no usage data is sent.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        from mlflow import MlflowClient
        from mlflow.entities import Param
        from mlflow.exceptions import MlflowException

        uri, experiment = mlflow_store(run, self.uri)
        self.client, self.last = MlflowClient(tracking_uri=uri), {}
        try:
            self.run_id = self._resumed(run, uri) if resumed_at is not None else None
            if self.run_id is not None:
                self.client.update_run(self.run_id, status="RUNNING")
                for key in self.client.get_run(self.run_id).data.metrics:
                    self.last[key] = max(m.step for m in self.client.get_metric_history(self.run_id, key))
                return
            with _store_lock(uri):
                found = self.client.get_experiment_by_name(experiment)
                exp_id = found.experiment_id if found else self.client.create_experiment(experiment)
            self.run_id = self.client.create_run(exp_id, run_name=run.name).info.run_id
            params = [Param(k, str(v)) for k, v in flat_config(config).items()]
            for i in range(0, len(params), 100):                    # MLflow takes at most 100 params a batch
                self.client.log_batch(self.run_id, params=params[i:i + 100])
            self.client.log_dict(self.run_id, config, "config.json")
        except MlflowException as e:
            raise ConfigError(f"log=mlflow: the store {uri} refused the run {run}: {e.message}") from None
        write_json_atomic(run / TRACKING_FILE, {"mlflow": {"tracking_uri": uri, "run_id": self.run_id}})

    def _resumed(self, run: Path, uri: str) -> str | None:
        """The MLflow run this run folder logged to before, if it is in the same store."""
        path = run / TRACKING_FILE
        known = read_json(path).get("mlflow", {}) if path.exists() else {}
        if known.get("tracking_uri") != uri or not known.get("run_id"):
            return None
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_run(known["run_id"]).info.run_id
        except MlflowException:
            return None

    def log(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        keyed = {mlflow_key(k): v for k, v in metrics.items()}
        fresh = [Metric(k, v, now, step) for k, v in keyed.items() if step > self.last.get(k, -1)]
        if fresh:
            self.client.log_batch(self.run_id, metrics=fresh)
            self.last.update({m.key: step for m in fresh})

    def close(self, failed: bool = False) -> None:
        self.client.set_terminated(self.run_id, status="FAILED" if failed else "FINISHED")
