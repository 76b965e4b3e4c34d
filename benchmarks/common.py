"""Timing helpers for benchmarks: the shared command-line options, interleaved repeats, medians, rows stamped with
provenance, and transformers' pure-torch reference functions."""
from __future__ import annotations

import argparse
import csv
import importlib
import inspect
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gatelab.memory import keep_freed_memory
from gatelab.train.run import environment

RESULTS = Path("benchmarks/results")   # the committed results: written only when --out names them


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1; got {value}")
    return value


def int_list(text: str) -> list[int]:
    """An argparse type: comma-separated integers >= 1 (sequence lengths)."""
    return [positive_int(item) for item in text.split(",")]


def benchmark_parser(name: str, doc: str, repeats: int) -> argparse.ArgumentParser:
    """A parser with the options every benchmark takes: ``--repeats``, ``--out`` (default ``runs/benchmarks/NAME``,
    never the committed ``benchmarks/results/``) and ``--smoke`` (tiny shapes, one repeat)."""
    parser = argparse.ArgumentParser(prog=f"python -m benchmarks.{name}", description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=positive_int, default=repeats,
                        help=f"interleaved repeats per measurement; the median is reported (default {repeats})")
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks") / name,
                        help=f"where the rows go, as OUT.csv and OUT.json (default runs/benchmarks/{name}; "
                             f"{RESULTS / name} rewrites the committed results)")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny shapes and one repeat: checks that the benchmark runs, measures nothing")
    return parser


def start(args: argparse.Namespace) -> None:
    """What every benchmark does before measuring: one repeat under ``--smoke``, and the CLI's memory policy, so
    every implementation timed here allocates under the same policy."""
    if args.smoke:
        args.repeats = 1
    keep_freed_memory()


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
    print(f"rows: {out.with_suffix('.csv')}, {out.with_suffix('.json')}")


def transformers_torch_function(module: str, name: str) -> Callable | None:
    """transformers' pure-torch function ``module.name`` (e.g. Qwen3-Next's ``torch_chunk_gated_delta_rule``), or
    None with a message when this transformers lacks it. transformers wraps such functions so that they call
    flash-linear-attention's Triton kernels whenever fla is installed, even on CPU tensors, where Triton finds no
    driver; the function it wraps is the pure-torch reference, and the one measured here."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        fn = inspect.unwrap(getattr(importlib.import_module(module), name))
    except (ImportError, AttributeError) as e:
        print(f"skipping transformers' {name}: {e}")
        return None
    if fn.__module__ != module:
        print(f"skipping transformers' {name}: its pure-torch function is not reachable here (got {fn.__module__})")
        return None
    return fn
