"""Aggregate sweep records into a comparison table; write it as CSV and markdown."""
from __future__ import annotations

import csv
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

CELL = ("mixer", "d_model", "seq_len")


def best_over_lrs(records: list[dict[str, Any]], metric: str = "accuracy") -> list[dict[str, Any]]:
    """Per (mixer, d_model, seq_len, seed): the record with the best ``metric`` over learning rates."""
    best: dict[tuple, dict[str, Any]] = {}
    for r in records:
        key = tuple(r[c] for c in CELL) + (r["seed"],)
        if key not in best or r[metric] > best[key][metric]:
            best[key] = r
    return list(best.values())


def summarize(records: list[dict[str, Any]], metric: str = "accuracy") -> list[dict[str, Any]]:
    """One row per cell: mean and std over seeds of the best-over-lrs metric, the learning rates that won,
    parameters, state size (floats per sequence) and median training throughput."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in best_over_lrs(records, metric):
        groups[tuple(r[c] for c in CELL)].append(r)
    rows = []
    for key, rs in sorted(groups.items(), key=lambda kv: (str(kv[0][0]), kv[0][1], kv[0][2])):
        values = [r[metric] for r in rs]
        rows.append({
            **dict(zip(CELL, key, strict=True)),
            f"{metric}_mean": statistics.fmean(values),
            f"{metric}_std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "seeds": len(values),
            "best_lrs": " ".join(sorted({f"{r['lr']:g}" for r in rs})),
            "num_params": rs[0]["num_params"],
            "state_size": rs[0]["state_size"],
            "tokens_per_second": statistics.median(r["tokens_per_second"] for r in rs),
        })
    return rows


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    fields = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def markdown_table(rows: list[dict[str, Any]], metric: str = "accuracy") -> str:
    header = ["mixer", "d_model", "seq_len", f"{metric} (mean ± std)", "seeds", "best lr", "params",
              "state (floats/seq)", "tokens/s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [r["mixer"], r["d_model"], r["seq_len"], f"{r[metric + '_mean']:.3f} ± {r[metric + '_std']:.3f}",
                 r["seeds"], r["best_lrs"], f"{r['num_params']:,}", f"{r['state_size']:,}",
                 f"{r['tokens_per_second']:,.0f}"]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines)
