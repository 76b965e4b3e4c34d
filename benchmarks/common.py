"""Timing helpers for benchmarks: interleaved repeats, medians, rows stamped with provenance."""
from __future__ import annotations

import csv
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gatelab.memory import keep_freed_memory
from gatelab.train.run import environment

keep_freed_memory()   # as the CLI does: every implementation timed here allocates under the same policy


def median_times(fns: dict[str, Callable[[], Any]], repeats: int, warmup: int = 1) -> dict[str, float]:
    """Median wall time of each function, running them interleaved (a, b, a, b, ...) so drift hits all alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def write_rows(rows: list[dict[str, Any]], out: Path) -> None:
    """Write rows (each stamped with device, versions and git commit) as CSV and JSON next to each other."""
    env = environment("cpu")
    rows = [{**r, **env} for r in rows]
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.with_suffix(".csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    out.with_suffix(".json").write_text(json.dumps(rows, indent=2))
