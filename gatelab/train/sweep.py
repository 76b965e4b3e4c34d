"""Run a list of configurations into one folder, skipping those already finished with the same config and
resuming those interrupted after a checkpoint; optionally in several worker processes at once."""
from __future__ import annotations

import dataclasses
import multiprocessing
import os
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..config import to_dict
from ..memory import keep_freed_memory, keeps_freed_memory
from .checkpoint import CHECKPOINT
from .config import TrainConfig
from .loop import train
from .run import RunDir


@dataclass
class SweepRun:
    """One run of a sweep: a folder name, the coordinates it is reported under, and its config."""

    name: str
    coords: dict[str, Any]
    config: TrainConfig


def _what_it_computes(config: dict[str, Any]) -> dict[str, Any]:
    """A stored config without the fields that only say how often the run saved itself along the way."""
    return {k: v for k, v in config.items() if k != "checkpoint_every"}


def _stored_if_same(run_dir: Path, config: TrainConfig) -> dict[str, Any] | None:
    """The config stored in ``run_dir`` if it describes the same computation as ``config``, else None."""
    path = run_dir / "config.json"
    if not path.exists():
        return None
    stored = TrainConfig.stored(path)
    vocab = stored["model"]["vocab_size"] if config.task == "lm" else None   # the tokenizer's, decided by config
    same = _what_it_computes(stored) == _what_it_computes(to_dict(config.resolved(vocab)))
    return stored if same else None


def finished_result(run_dir: Path, config: TrainConfig) -> dict[str, Any] | None:
    """The stored result if ``run_dir`` holds a finished run of this config (however often it checkpointed)."""
    if not (run_dir / "result.json").exists():     # (asking RunDir would create the folder)
        return None
    result = RunDir(run_dir).result()
    return result if _stored_if_same(run_dir, config) is not None else None


def run_or_resume(run_dir: Path, config: TrainConfig) -> dict[str, Any]:
    """Train ``config`` into ``run_dir``; an unfinished run of the same computation that left a checkpoint is
    resumed from it (keeping its checkpoint cadence), so an interrupted sweep loses at most the steps since the
    last checkpoint."""
    stored = _stored_if_same(run_dir, config)
    if stored is not None and (run_dir / CHECKPOINT).exists():
        return train(dataclasses.replace(config, checkpoint_every=stored["checkpoint_every"]), run_dir,
                     progress=False, resume=True)
    return train(config, run_dir, progress=False)


def scores(task: str, result: dict[str, Any]) -> dict[str, float]:
    """The reported metrics of one run. MQAR: final test accuracy, overall and per slice. Language modelling:
    valid and test perplexity at the evaluation with the lowest valid perplexity (model selection on valid)."""
    if task == "lm":
        return {"valid_ppl": result["best"]["valid/ppl"], "test_ppl": result["best"]["test/ppl"]}
    final = result["final"]
    return {"accuracy": final["accuracy"], **{k: v for k, v in final.items() if k.startswith("accuracy/")}}


def _start_worker(parent: int, keep_memory: bool) -> None:
    """A worker's initializer: take on the sweep process's memory policy, and end this process once the sweep
    process that started it is gone (killed, say), so no run goes on training unwatched."""
    if keep_memory:
        keep_freed_memory()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _train_with_threads(run_dir: Path, config: TrainConfig, threads: int) -> None:
    """A worker process's job: train one run on ``threads`` intra-op threads."""
    torch.set_num_threads(threads)
    run_or_resume(run_dir, config)


def _train_in_workers(pending: list[tuple[Path, TrainConfig]], workers: int, advance) -> None:
    """Train every ``(run_dir, config)`` in ``workers`` fresh processes, each handed the next run as it frees up
    and given an equal share of this process's threads; the first failure cancels the runs not yet started and is
    raised here. Workers keep freed memory if this process does (``gatelab.memory``) and end with it."""
    threads = max(1, torch.get_num_threads() // workers)
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker,
                               initargs=(os.getpid(), keeps_freed_memory()))
    try:
        remaining = {pool.submit(_train_with_threads, run_dir, config, threads) for run_dir, config in pending}
        while remaining:
            done, remaining = wait(remaining, return_when=FIRST_EXCEPTION)
            for future in done:
                future.result()
                advance()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def run_sweep(runs: list[SweepRun], out_dir: str | Path, progress: bool = True, workers: int = 1,
              train_missing: bool = True) -> list[dict[str, Any]]:
    """Train every run under ``out_dir/runs/<name>`` (finished ones are read back, not redone).

    ``workers`` > 1 trains that many runs at a time, each in its own process with an equal share of the threads
    (on a small CPU, two one-thread processes get more done than one two-thread process: small models leave
    threads idle). A run trained in a worker computes exactly what it computes alone on as many threads.

    Returns one flat record per run, in the order of ``runs``: its coordinates and its measured results. With
    ``train_missing=False`` nothing is trained and only the runs already finished have a record.
    """
    if workers < 1:
        raise ValueError(f"workers must be a positive integer; got {workers}")
    out_dir = Path(out_dir)
    run_dirs = [out_dir / "runs" / run.name for run in runs]
    finished = [finished_result(d, run.config) is not None for d, run in zip(run_dirs, runs, strict=True)]
    pending = [(d, run.config) for d, run, done in zip(run_dirs, runs, finished, strict=True)
               if not done and train_missing]
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   disable=not progress or not pending)
    with bar:
        task = bar.add_task("sweep", total=len(runs), completed=len(runs) - len(pending))
        if workers == 1:
            for run_dir, config in pending:
                bar.update(task, description=run_dir.name)
                run_or_resume(run_dir, config)
                bar.advance(task)
        elif pending:
            bar.update(task, description=f"{min(workers, len(pending))} workers")
            _train_in_workers(pending, workers, lambda: bar.advance(task))
    return [_record(run, RunDir(d).result()) for run, d, done in zip(runs, run_dirs, finished, strict=True)
            if done or train_missing]


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
    }
