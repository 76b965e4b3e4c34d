"""What every executor shares: the job of one run, the interface, and the error that reports failed runs."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..config import TrainConfig
from ..progress import RunProgress

# The function an executor calls for each job, wherever the job runs: train ``config`` into ``run_dir`` (the
# sweep's ``_train_one``: a module-level function, so worker processes and Ray tasks import it by name).
TrainOne = Callable[[Path, TrainConfig, RunProgress, bool], None]


@dataclass(frozen=True)
class Job:
    """One run of a sweep: its folder (the only place its training writes), its config, and whether to start it
    again from step 0 (``overwrite``)."""

    run_dir: Path
    config: TrainConfig
    overwrite: bool = False

    @property
    def name(self) -> str:
        return self.run_dir.name


class RunsFailed(RuntimeError):
    """Runs of a sweep raised. ``failures``: (run name, traceback text) per failed run; ``stopped``: whether the
    sweep stopped at the first failure (the other runs cancelled) rather than training the others on; ``records``:
    the sweep's records of the runs finished all the same (set by the sweep)."""

    def __init__(self, failures: list[tuple[str, str]], stopped: bool, total: int):
        self.failures, self.stopped, self.records = failures, stopped, []
        parts = [f"run {name} failed:\n{trace.rstrip()}" for name, trace in failures]
        if stopped:
            parts.append("the sweep stopped at this failure: runs still training were cancelled and the rest not "
                         "started (running it again resumes them; --keep-going trains them despite a failure)")
        else:
            parts.append(f"{len(failures)} of {total} runs failed; the others finished (running the sweep again "
                         "trains the failed runs again)")
        super().__init__("\n\n".join(parts))


class Executor(Protocol):
    """Trains the jobs of a sweep, each by ``train_one(job.run_dir, job.config, reporter, job.overwrite)``, and
    sends their progress to ``reporter`` here. The first failure stops the rest and is raised, unless
    ``keep_going``: then every job is trained and the failures are raised together (RunsFailed) at the end."""

    keep_going: bool

    def run(self, train_one: TrainOne, jobs: list[Job], reporter: RunProgress) -> None: ...
