"""Run a list of configurations into one folder, skipping those already finished with the same config and
resuming those interrupted after a checkpoint; one after another here, or by an executor (worker processes on this
machine, Ray tasks on a cluster: ``gatelab.train.executors``).

One process at a time trains a sweep folder: a second one on the same folder stops at once, naming the process
that holds it (``train_missing=False``, the command line's ``--report-only``, reads the finished runs at any time).
A run folder that holds another configuration stops the sweep before anything trains, unless ``overwrite``. A run
whose folder another process holds (a ``gatelab train`` into it) is skipped with a message. A run that diverges is
a result, marked diverged, and the rest of the sweep goes on; a rerun reads it back like any finished run."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import ConfigError, to_dict
from .channel_stats import mean_stats
from .checkpoint import CHECKPOINT, LEGACY_CHECKPOINT
from .config import TrainConfig
from .diagnostics import TrainingDiverged
from .executors import Executor, Job, LocalExecutor, RunsFailed
from .files import read_json
from .lock import FolderBusy, folder_lock
from .loop import train
from .progress import RunProgress, reporting
from .run import RunDir, stored_config, what_it_computes
from .tasks import task_class


@dataclass
class SweepRun:
    """One run of a sweep: a folder name, the coordinates it is reported under, and its config."""

    name: str
    coords: dict[str, Any]
    config: TrainConfig


def _resolved(config: TrainConfig, stored: dict[str, Any]) -> dict[str, Any]:
    """``config`` resolved as a run folder stores it (an LM's vocabulary: the stored one, decided by the config)."""
    return to_dict(config.resolved(stored["model"]["vocab_size"] if config.task == "lm" else None))


def _stored_if_same(run_dir: Path, config: TrainConfig) -> dict[str, Any] | None:
    """The config stored in ``run_dir`` if it describes the same computation as ``config``, else None."""
    stored = stored_config(run_dir)
    if stored is None:
        return None
    return stored if what_it_computes(stored) == what_it_computes(_resolved(config, stored)) else None


def finished_result(run_dir: Path, config: TrainConfig) -> dict[str, Any] | None:
    """The stored result if ``run_dir`` holds a finished (or diverged) run of this config (however often it
    checkpointed). A folder whose config or result cannot be read holds no finished run: training into it says
    why, or overwrites it."""
    if not (run_dir / "result.json").exists():     # (asking RunDir would create the folder)
        return None
    try:
        return read_json(run_dir / "result.json") if _stored_if_same(run_dir, config) is not None else None
    except ConfigError:
        return None


def run_or_resume(run_dir: Path, config: TrainConfig, progress: bool | RunProgress = False,
                  overwrite: bool = False) -> dict[str, Any]:
    """Train ``config`` into ``run_dir``; an unfinished run of the same computation that left a checkpoint is
    resumed from it (keeping its checkpoint cadence), so an interrupted sweep loses at most the steps since the
    last checkpoint. With ``overwrite`` the run starts again from step 0 in any case, and a folder of another
    configuration is cleared instead of refused."""
    if overwrite:
        return train(config, run_dir, progress=progress, overwrite=True)
    stored = _stored_if_same(run_dir, config)
    if stored is not None and ((run_dir / CHECKPOINT).exists() or (run_dir / LEGACY_CHECKPOINT).exists()):
        return train(dataclasses.replace(config, checkpoint_every=stored["checkpoint_every"]), run_dir,
                     progress=progress, resume=True)
    return train(config, run_dir, progress=progress)


def _check_folders(pending: list[tuple[Path, TrainConfig]]) -> None:
    """Refuse (before anything trains) run folders that hold another configuration, naming the first."""
    problems = []
    for run_dir, config in pending:
        if run_dir.exists():
            stored = stored_config(run_dir)
            problem = RunDir(run_dir).conflict(_resolved(config, stored) if stored else {})
            if problem:
                problems.append(problem)
    if problems:
        more = f" (and {len(problems) - 1} more run folders of this sweep)" if len(problems) > 1 else ""
        raise ConfigError(f"{problems[0]}{more}; pass --overwrite (overwrite=True) to train them again from the "
                          "start, or use another output folder")


def _train_one(run_dir: Path, config: TrainConfig, reporter: RunProgress, overwrite: bool) -> None:
    """Train one run of a sweep. A divergence is the run's result (its result.json says so, the reporter has
    shown it); a run folder another process holds is skipped, with a message."""
    try:
        run_or_resume(run_dir, config, reporter, overwrite)
    except TrainingDiverged:
        pass
    except FolderBusy as e:
        reporter.note(run_dir.name, f"skipped: {e.args[0]}")


def scores(task: str, result: dict[str, Any]) -> dict[str, float]:
    """The reported metrics of one run (``Task.scores``): MQAR and the synthetic next-token tasks their final
    accuracy, overall and per slice; language modelling valid and test perplexity, classification valid and test
    accuracy, forecasting test MSE and MAE, each at the evaluation with the best valid metric (model selection on
    valid). A diverged run scores the worst: accuracy 0, perplexity or error infinity."""
    return task_class(task).scores(result)


def run_sweep(runs: list[SweepRun], out_dir: str | Path, progress: bool | RunProgress = True,
              executor: Executor | None = None, train_missing: bool = True,
              overwrite: bool = False) -> list[dict[str, Any]]:
    """Train every run under ``out_dir/runs/<name>`` (finished ones are read back, not redone).

    ``executor``: where the runs train (``gatelab.train.executors``): by default one after another in this process;
    ``LocalExecutor(workers)`` trains that many at a time in worker processes, ``RayExecutor`` each as a Ray task.
    Whichever trains it, a run computes exactly what it computes alone on as many threads, in its own folder.
    ``progress``: True shows a bar per run in a terminal and plain lines otherwise (workers' runs included).
    ``overwrite``: run folders of another configuration, and unfinished runs, train again from the start.

    Returns one flat record per finished (or diverged) run, in the order of ``runs``: its coordinates and its
    measured results. With ``train_missing=False`` nothing is trained (and nothing locked). Runs that raise:
    the executor's error (RunsFailed carries the records of the runs that finished all the same).
    """
    out_dir = Path(out_dir)
    run_dirs = [out_dir / "runs" / run.name for run in runs]
    pending = [(d, run.config) for d, run in zip(run_dirs, runs, strict=True)
               if train_missing and finished_result(d, run.config) is None]
    if pending:
        busy = "; --report-only reports the runs finished so far"
        with folder_lock(out_dir, "sweep folder", busy), \
                reporting(progress, len(runs), len(runs) - len(pending)) as reporter:
            if not overwrite:
                _check_folders(pending)
            try:
                (executor or LocalExecutor()).run(_train_one, [Job(d, c, overwrite) for d, c in pending], reporter)
            except RunsFailed as e:
                e.records = _records(runs, run_dirs)
                raise
    return _records(runs, run_dirs)


def _records(runs: list[SweepRun], run_dirs: list[Path]) -> list[dict[str, Any]]:
    results = [finished_result(d, run.config) for d, run in zip(run_dirs, runs, strict=True)]
    return [_record(run, result) for run, result in zip(runs, results, strict=True) if result is not None]


def _record(run: SweepRun, result: dict[str, Any]) -> dict[str, Any]:
    """One run's flat record: its coordinates and its measured results."""
    return {
        **run.coords,
        "run": run.name,
        **scores(run.config.task, result),
        "steps": result["steps"],
        "num_params": result["num_params"],
        "active_params": result.get("active_params", result["num_params"]),   # (older runs: all dense)
        **mean_stats(result.get("channel_stats", {})),
        "state_size": result["state_size"],
        "tokens_per_second": result["tokens_per_second"],
        "train_seconds": result["train_seconds"],
        "threads": result.get("threads"),          # (runs finished before it was recorded: None)
        "diverged": bool(result.get("diverged")),
        "diverged_at": result.get("diverged_at"),
    }
