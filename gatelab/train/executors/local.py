"""The local executor: the runs of a sweep one after another in this process, or ``workers`` at a time in worker
processes on this machine, each with an equal share of this process's threads."""
from __future__ import annotations

import multiprocessing
import os
import threading
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

import torch

from ...config import ConfigError
from ...memory import keep_freed_memory, keeps_freed_memory
from ..config import TrainConfig
from ..progress import QueueProgress, RunProgress, relay
from .base import Job, RunsFailed, TrainOne


def stop(name: str, error: BaseException, total: int) -> BaseException:
    """What the first failure of a sweep raises: a user's mistake (ConfigError) as it is, with the run named (the
    CLI prints it in one line); anything else as RunsFailed naming the run, with its traceback."""
    if isinstance(error, ConfigError):
        return ConfigError(f"run {name}: {error}")
    return RunsFailed([failure(name, error)], stopped=True, total=total)


def failure(name: str, error: BaseException) -> tuple[str, str]:
    """A failed run's name and traceback: where it was raised (a worker's exception carries the worker's
    traceback, as text, in its cause)."""
    remote = getattr(error.__cause__, "tb", None)          # '\n"""\n<traceback>"""'
    if isinstance(remote, str):
        return name, remote.removeprefix('\n"""\n').removesuffix('"""')
    return name, "".join(traceback.format_exception(error))


class LocalExecutor:
    """``workers`` = 1: each run in this process, in order, on this process's threads. ``workers`` > 1: that many
    fresh worker processes, each handed the next run as it frees up, on ``threads // workers`` threads (on a small
    CPU, two one-thread processes get more done than one two-thread process: small models leave threads idle).
    A run trained in a worker computes exactly what it computes alone on as many threads. Workers keep freed
    memory if this process does (``gatelab.memory``) and end with it."""

    def __init__(self, workers: int = 1, keep_going: bool = False):
        if workers < 1:
            raise ValueError(f"workers must be a positive integer; got {workers}")
        self.workers, self.keep_going = workers, keep_going

    def run(self, train_one: TrainOne, jobs: list[Job], reporter: RunProgress) -> None:
        if self.workers == 1:
            self._in_process(train_one, jobs, reporter)
        else:
            self._in_workers(train_one, jobs, reporter)

    def _in_process(self, train_one: TrainOne, jobs: list[Job], reporter: RunProgress) -> None:
        failures = []
        for job in jobs:
            try:
                train_one(job.run_dir, job.config, reporter, job.overwrite)
            except Exception as e:
                if not self.keep_going:
                    raise stop(job.name, e, len(jobs)) from e
                failures.append(failure(job.name, e))
        if failures:
            raise RunsFailed(failures, stopped=False, total=len(jobs))

    def _in_workers(self, train_one: TrainOne, jobs: list[Job], reporter: RunProgress) -> None:
        """The first failure cancels the runs not yet started and is raised here (``keep_going``: every run is
        trained and the failures raised together)."""
        threads = max(1, torch.get_num_threads() // max(1, min(self.workers, len(jobs))))
        context = multiprocessing.get_context("spawn")
        queue = context.Queue()
        pool = ProcessPoolExecutor(self.workers, mp_context=context, initializer=_start_worker,
                                   initargs=(os.getpid(), keeps_freed_memory(), queue))
        failures = []
        with relay(queue, reporter):
            try:
                remaining: dict[Future, Job] = {
                    pool.submit(_train_with_threads, train_one, job.run_dir, job.config, threads, job.overwrite): job
                    for job in jobs}
                while remaining:
                    done, _ = wait(remaining, return_when=FIRST_COMPLETED if self.keep_going else FIRST_EXCEPTION)
                    for future in done:
                        job = remaining.pop(future)
                        if future.exception() is None:
                            continue
                        if not self.keep_going:
                            _end_workers(pool)           # runs still training stop now (each resumes later)
                            raise stop(job.name, future.exception(), len(jobs)) from future.exception()
                        failures.append(failure(job.name, future.exception()))
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
        if failures:
            raise RunsFailed(failures, stopped=False, total=len(jobs))


def _end_workers(pool: ProcessPoolExecutor) -> None:
    """Stop a pool's worker processes now, mid-run: a run folder is only ever written atomically, so a stopped run
    resumes from its last checkpoint (or starts again) next time."""
    for process in list((pool._processes or {}).values()):   # (no public way before Python 3.14)
        process.terminate()


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


def _train_with_threads(train_one: TrainOne, run_dir: Path, config: TrainConfig, threads: int,
                        overwrite: bool) -> None:
    """A worker process's job: train one run on ``threads`` intra-op threads, reporting to the sweep process."""
    torch.set_num_threads(threads)
    train_one(run_dir, config, QueueProgress(_QUEUE), overwrite)
