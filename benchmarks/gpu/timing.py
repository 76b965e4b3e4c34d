"""Timing on a GPU (or a CPU): device-synchronised wall times, medians over interleaved repeats, a time guard,
and out-of-memory caught per measurement."""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


class Budget:
    """Seconds left of a run's time budget; measurements are skipped once it is spent."""

    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()


def sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def median_ms(fns: dict[str, Callable[[], object]], device: str, repeats: int, warmup: int, budget: Budget
              ) -> dict[str, float | str]:
    """Median milliseconds of each function, run interleaved (a, b, c, c, b, a, ...) after ``warmup`` calls each (which
    also compile Triton kernels). A function that runs out of memory reports ``"oom"``; once the budget is spent,
    the functions not yet measured report ``"skipped (time)"`` and the repeats stop early."""
    result: dict[str, float | str] = {}
    live: dict[str, Callable[[], object]] = {}
    for name, fn in fns.items():
        if budget.left() <= 0:
            result[name] = "skipped (time)"
            continue
        try:
            for _ in range(warmup):
                fn()
            sync(device)
            live[name] = fn
        except torch.OutOfMemoryError:
            result[name] = "oom"
        except Exception as e:   # a kernel that cannot compile or run here: reported in its cell, the rest go on
            result[name] = f"error: {type(e).__name__}: {str(e).splitlines()[0][:160]}"
        finally:
            if torch.device(device).type == "cuda":
                torch.cuda.empty_cache()
    times: dict[str, list[float]] = {name: [] for name in live}
    order = list(live.items())
    for i in range(repeats):
        if budget.left() <= 0 and all(times.values()):
            break
        for name, fn in order if i % 2 == 0 else order[::-1]:   # forward, then backward: no fixed neighbours
            sync(device)
            t0 = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - t0)
    for name in fns:
        if name in times:
            result[name] = statistics.median(times[name]) * 1e3
    return result
