"""Progress of training runs as the loop reports it: a live bar per run (steps, loss, ETA) in a terminal, plain
lines when the output is piped or logged, and a queue that carries a worker process's reports to the sweep
process that shows them."""
from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

SHOWN = ("accuracy", "valid/ppl", "test/ppl")       # the evaluation results a progress report shows


def clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def scores_text(evals: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.4g}" for k, v in evals.items() if k in SHOWN)


def describe(result: dict[str, Any]) -> str:
    """How a run ended, in a line."""
    if result.get("diverged"):
        return f"diverged: {result['reason']}"
    scores = scores_text(result["final"])
    return f"finished after {result['steps']} steps in {clock(result['train_seconds'])}" + (
        f" ({scores})" if scores else "")


class RunProgress:
    """What the training loop reports about a run (this base shows nothing). ``name``: the run's folder name."""

    def started(self, name: str, step: int, total: int) -> None:
        """The run begins (or resumes) at ``step`` of ``total``."""

    def stepped(self, name: str, step: int, total: int, loss: float, evals: dict[str, float]) -> None:
        """``step`` steps are done; ``loss``: the last step's training loss; ``evals``: the last evaluation."""

    def ended(self, name: str, result: dict[str, Any]) -> None:
        """The run finished or diverged (``result["diverged"]``)."""

    def note(self, name: str, text: str) -> None:
        """Anything else worth a line (a run skipped, say)."""


class LineProgress(RunProgress):
    """Plain lines for logs and pipes: a run's start, a line every ``every`` seconds while it trains (step, loss,
    last evaluation, elapsed time, ETA) and its end. In a sweep of ``runs`` runs (``done`` finished before), each
    end line counts the finished runs."""

    def __init__(self, every: float = 30.0, out: TextIO | None = None, runs: int = 0, done: int = 0):
        self.every, self.out, self.runs, self.done = every, out, runs, done
        self._clocks: dict[str, list[float]] = {}     # name -> [start time, start step, time of the last line]

    def _print(self, text: str) -> None:
        print(text, file=self.out or sys.stdout, flush=True)

    def started(self, name: str, step: int, total: int) -> None:
        now = time.monotonic()
        self._clocks[name] = [now, step, now]
        self._print(f"{name}: {'resumed at' if step else 'started,'} step {step}/{total}")

    def stepped(self, name: str, step: int, total: int, loss: float, evals: dict[str, float]) -> None:
        start, first, last = self._clocks.setdefault(name, [time.monotonic(), step - 1, time.monotonic()])
        now = time.monotonic()
        if now - last < self.every:
            return
        self._clocks[name][2] = now
        eta = (now - start) / max(step - first, 1) * (total - step)
        scores = scores_text(evals)
        self._print(f"{name}: step {step}/{total}, loss {loss:.4g}" + (f", {scores}" if scores else "")
                    + f", {clock(now - start)} elapsed, ETA {clock(eta)}")

    def ended(self, name: str, result: dict[str, Any]) -> None:
        self._clocks.pop(name, None)
        self.done += 1
        self._print((f"[{self.done}/{self.runs}] " if self.runs else "") + f"{name}: {describe(result)}")

    def note(self, name: str, text: str) -> None:
        self._print(f"{name}: {text}")


class BarProgress(RunProgress):
    """Live bars in a terminal: one per training run (steps done of total, loss and last evaluation, ETA) and, in
    a sweep of ``runs`` runs, one counting the finished runs, above which each run's end is printed."""

    def __init__(self, runs: int = 0, done: int = 0, console: Console | None = None):
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(bar_width=12), MofNCompleteColumn(),
                            TextColumn("{task.fields[info]}"), TimeRemainingColumn(), console=console, transient=True)
        self.sweep = self.bar.add_task("runs", total=runs, completed=done, info="") if runs else None
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> BarProgress:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def started(self, name: str, step: int, total: int) -> None:
        self.tasks[name] = self.bar.add_task(name, total=total, completed=step, info="")

    def stepped(self, name: str, step: int, total: int, loss: float, evals: dict[str, float]) -> None:
        scores = scores_text(evals)
        self.bar.update(self.tasks[name], completed=step, info=f"loss {loss:.3f}" + (f", {scores}" if scores else ""))

    def ended(self, name: str, result: dict[str, Any]) -> None:
        self.bar.remove_task(self.tasks.pop(name))
        if self.sweep is not None:
            self.bar.advance(self.sweep)
            self.bar.console.print(f"{name}: {describe(result)}", markup=False, highlight=False)

    def note(self, name: str, text: str) -> None:
        self.bar.console.print(f"{name}: {text}", markup=False, highlight=False)


@contextlib.contextmanager
def reporting(progress: bool | RunProgress, runs: int = 0, done: int = 0) -> Iterator[RunProgress]:
    """The reporter to use: ``progress`` itself if it is one, nothing for False, and for True bars when stdout is
    a terminal and plain lines otherwise (``runs``, ``done``: the sweep's size and the runs finished before)."""
    if isinstance(progress, RunProgress):
        yield progress
    elif not progress:
        yield RunProgress()
    elif Console().is_terminal:
        with BarProgress(runs, done) as bars:
            yield bars
    else:
        yield LineProgress(runs=runs, done=done)


class QueueProgress(RunProgress):
    """A worker process's reporter: sends each report (steps at most every ``every`` seconds) to ``queue``, for
    ``relay`` to pass on in the process that shows them."""

    def __init__(self, queue: Any, every: float = 0.5):
        self.queue, self.every, self._last = queue, every, 0.0

    def started(self, name: str, step: int, total: int) -> None:
        self.queue.put(("started", (name, step, total)))

    def stepped(self, name: str, step: int, total: int, loss: float, evals: dict[str, float]) -> None:
        now = time.monotonic()
        if now - self._last >= self.every or step == total:
            self._last = now
            self.queue.put(("stepped", (name, step, total, loss, evals)))

    def ended(self, name: str, result: dict[str, Any]) -> None:
        self.queue.put(("ended", (name, result)))

    def note(self, name: str, text: str) -> None:
        self.queue.put(("note", (name, text)))


@contextlib.contextmanager
def relay(queue: Any, reporter: RunProgress) -> Iterator[None]:
    """Pass the reports arriving on ``queue`` to ``reporter`` (on a thread) until the block ends, then the rest."""
    def forward() -> None:
        while (item := queue.get()) is not None:
            getattr(reporter, item[0])(*item[1])

    thread = threading.Thread(target=forward, daemon=True)
    thread.start()
    try:
        yield
    finally:
        queue.put(None)
        thread.join()
