"""Run a list of configurations into one folder, skipping those already finished with the same config and
resuming those interrupted after a checkpoint; optionally in several worker processes at once.

One process at a time trains a sweep folder: a second one on the same folder stops at once, naming the process
that holds it (``train_missing=False``, the command line's ``--report-only``, reads the finished runs at any time).
A run folder that holds another configuration stops the sweep before anything trains, unless ``overwrite``. A run
whose folder another process holds (a ``gatelab train`` into it) is skipped with a message. A run that diverges is
a result, marked diverged, and the rest of the sweep goes on; a rerun reads it back like any finished run."""
from __future__ import annotations

import dataclasses
import math
import multiprocessing
import os
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..config import ConfigError, to_dict
from ..memory import keep_freed_memory, keeps_freed_memory
from .checkpoint import CHECKPOINT, LEGACY_CHECKPOINT
from .config import TrainConfig
from .diagnostics import TrainingDiverged
from .files import read_json
from .lock import FolderBusy, folder_lock
from .loop import train
from .progress import QueueProgress, RunProgress, relay, reporting
from .run import RunDir, stored_config, what_it_computes


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
    """The reported metrics of one run. MQAR: final test accuracy, overall and per slice. Language modelling:
    valid and test perplexity at the evaluation with the lowest valid perplexity (model selection on valid).
    A diverged run scores the worst: accuracy 0, perplexity infinity."""
    if task == "lm":
        if result.get("diverged"):
            return {"valid_ppl": math.inf, "test_ppl": math.inf}
        return {"valid_ppl": result["best"]["valid/ppl"], "test_ppl": result["best"]["test/ppl"]}
    if result.get("diverged"):
        return {"accuracy": 0.0}
    final = result["final"]
    return {"accuracy": final["accuracy"], **{k: v for k, v in final.items() if k.startswith("accuracy/")}}


_QUEUE: Any = None      # in a worker process: where its progress reports go (set by _start_worker)


def _start_worker(parent: int, keep_memory: bool, queue: Any) -> None:
    """A worker's initializer: send progress reports to ``queue``, take on the sweep process's memory policy, and
    end this process once the sweep process that started it is gone (killed, say), so no run goes on training
    unwatched."""
    global _QUEUE
    _QUEUE = queue
    if keep_memory:
        keep_freed_memory()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _train_with_threads(run_dir: Path, config: TrainConfig, threads: int, overwrite: bool) -> None:
    """A worker process's job: train one run on ``threads`` intra-op threads, reporting to the sweep process."""
    torch.set_num_threads(threads)
    _train_one(run_dir, config, QueueProgress(_QUEUE), overwrite)


def _train_in_workers(pending: list[tuple[Path, TrainConfig]], workers: int, reporter: RunProgress,
                      overwrite: bool) -> None:
    """Train every ``(run_dir, config)`` in ``workers`` fresh processes, each handed the next run as it frees up
    and given an equal share of this process's threads; their progress comes back to ``reporter`` here. The first
    failure cancels the runs not yet started and is raised here. Workers keep freed memory if this process does
    (``gatelab.memory``) and end with it."""
    threads = max(1, torch.get_num_threads() // workers)
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                               initargs=(os.getpid(), keeps_freed_memory(), queue))
    with relay(queue, reporter):
        try:
            remaining = {pool.submit(_train_with_threads, run_dir, config, threads, overwrite)
                         for run_dir, config in pending}
            while remaining:
                done, remaining = wait(remaining, return_when=FIRST_EXCEPTION)
                for future in done:
                    future.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def run_sweep(runs: list[SweepRun], out_dir: str | Path, progress: bool | RunProgress = True, workers: int = 1,
              train_missing: bool = True, overwrite: bool = False) -> list[dict[str, Any]]:
    """Train every run under ``out_dir/runs/<name>`` (finished ones are read back, not redone).

    ``workers`` > 1 trains that many runs at a time, each in its own process with an equal share of the threads
    (on a small CPU, two one-thread processes get more done than one two-thread process: small models leave
    threads idle). A run trained in a worker computes exactly what it computes alone on as many threads.
    ``progress``: True shows a bar per run in a terminal and plain lines otherwise (workers' runs included).
    ``overwrite``: run folders of another configuration, and unfinished runs, train again from the start.

    Returns one flat record per finished (or diverged) run, in the order of ``runs``: its coordinates and its
    measured results. With ``train_missing=False`` nothing is trained (and nothing locked).
    """
    if workers < 1:
        raise ValueError(f"workers must be a positive integer; got {workers}")
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
            if workers == 1:
                for run_dir, config in pending:
                    _train_one(run_dir, config, reporter, overwrite)
            else:
                _train_in_workers(pending, workers, reporter, overwrite)
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
        "state_size": result["state_size"],
        "tokens_per_second": result["tokens_per_second"],
        "train_seconds": result["train_seconds"],
        "threads": result.get("threads"),          # (runs finished before it was recorded: None)
        "diverged": bool(result.get("diverged")),
        "diverged_at": result.get("diverged_at"),
    }
