"""Aggregate sweep records into a comparison table; write it as CSV and markdown."""
from __future__ import annotations

import csv
import math
import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CELL = ("mixer", "channel", "residual", "d_model", "seq_len")   # (channel, residual: "" unless a grid varies them)
VARIANT = ("channel", "residual")
# channel-mixer statistics a summary row averages over seeds where runs have them (mean over layers per run)
ROUTING = ("experts_per_token", "dropped_fraction", "router_entropy", "learners_per_token", "flops_fraction",
           "active_fraction")


@dataclass(frozen=True)
class TaskMetrics:
    """How a task's runs are compared: the metric that selects the learning rate, its direction, the metrics
    reported (mean ± std over seeds) and how each is printed."""

    select: str
    higher_is_better: bool
    reported: tuple[str, ...]
    labels: tuple[str, ...]
    fmt: str

    def better(self, a: float, b: float) -> bool:
        return a > b if self.higher_is_better else a < b


ACCURACY = TaskMetrics("accuracy", True, ("accuracy",), ("accuracy",), "{:.3f}")
CLASSIFICATION = TaskMetrics("valid_accuracy", True, ("test_accuracy", "valid_accuracy"), ("test acc", "valid acc"),
                             "{:.3f}")
METRICS = {
    "mqar": ACCURACY,
    "lm": TaskMetrics("valid_ppl", False, ("valid_ppl", "test_ppl"), ("valid ppl", "test ppl"), "{:.1f}"),
    "selective-copying": ACCURACY,
    "induction-heads": ACCURACY,
    **{key: CLASSIFICATION for key in ("lra-listops", "lra-text", "lra-pathfinder", "lra-image")},
    "forecast": TaskMetrics("valid_mse", False, ("test_mse", "test_mae"), ("test MSE", "test MAE"), "{:.3f}"),
}


def diverged(record: dict[str, Any]) -> bool:
    """Whether a run stopped on a non-finite loss, gradient or weight (records from before this was recorded: no)."""
    return bool(record.get("diverged"))


def best_over_lrs(records: list[dict[str, Any]], task: str = "mqar") -> list[dict[str, Any]]:
    """Per (mixer, d_model, seq_len, seed): the record with the best selection metric over learning rates, among
    the runs that did not diverge where there are any (Zoology's best-over-lr; a diverged run is the worst)."""
    m = METRICS[task]
    best: dict[tuple, dict[str, Any]] = {}
    for r in records:
        key = tuple(r.get(c, "") for c in CELL) + (r["seed"],)
        if key not in best:
            best[key] = r
        elif diverged(r) != diverged(best[key]):
            best[key] = best[key] if diverged(r) else r
        elif m.better(r[m.select], best[key][m.select]):
            best[key] = r
    return list(best.values())


def summarize(records: list[dict[str, Any]], task: str = "mqar") -> list[dict[str, Any]]:
    """One row per cell: mean, std, lowest and highest over seeds of each reported metric (best learning rate per
    seed), the learning rates that won, parameters, state size (floats per sequence) and median training
    throughput. A seed whose runs all diverged is counted in ``diverged`` and left out of the statistics (NaN when
    every seed diverged)."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in best_over_lrs(records, task):
        groups[tuple(r.get(c, "") for c in CELL)].append(r)
    rows = []
    # by mixer, width and length; the channels and residuals of a cell in the grid's order (a stable sort)
    for key, rs in sorted(groups.items(), key=lambda kv: (str(kv[0][0]), kv[0][3], kv[0][4])):
        row: dict[str, Any] = dict(zip(CELL, key, strict=True))
        kept = [r for r in rs if not diverged(r)]
        for metric in METRICS[task].reported:
            values = [r[metric] for r in kept] or [math.nan]
            row[f"{metric}_mean"] = statistics.fmean(values)
            row[f"{metric}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0 if kept else math.nan
            row[f"{metric}_min"], row[f"{metric}_max"] = min(values), max(values)
        rows.append({
            **row,
            "seeds": len(rs),
            "diverged": len(rs) - len(kept),
            "best_lrs": " ".join(sorted({f"{r['lr']:g}" for r in kept})),
            "heads": rs[0].get("heads", ""),
            "num_params": rs[0]["num_params"],
            "active_params": rs[0].get("active_params", rs[0]["num_params"]),
            "state_size": rs[0]["state_size"],
            "tokens_per_second": statistics.median(r["tokens_per_second"] for r in rs),
            **{k: statistics.fmean(r[k] for r in kept) for k in ROUTING if kept and all(k in r for r in kept)},
        })
    return rows


def decimals_for(std: float, seeds: int, most: int) -> int:
    """Decimals that print a mean over ``seeds`` to the first significant digit of its standard error
    ``std / sqrt(seeds)``, at most ``most`` (and at least 1): a rerun with other seeds moves the last printed digit
    by about one, not the digits before it."""
    if seeds < 2 or not std > 0 or not math.isfinite(std):
        return most
    return max(1, min(most, -math.floor(math.log10(std / math.sqrt(seeds)))))


def score_text(row: dict[str, Any], metric: str, task: str = "mqar") -> str:
    """A summary row's ``mean ± std`` of ``metric`` over seeds, saying how many seeds diverged ("diverged" if all
    did). Accuracies and errors are printed to their standard error's first digit (``decimals_for``)."""
    fmt, n = METRICS[task].fmt, row.get("diverged", 0)
    if n and n == row["seeds"]:
        return "diverged"
    mean, std = row[metric + "_mean"], row[metric + "_std"]
    if task != "lm":
        fmt = f"{{:.{decimals_for(std, row['seeds'] - n, most=3)}f}}"
    text = f"{fmt.format(mean)} ± {fmt.format(std)}"
    return text + (f" ({n} of {row['seeds']} seeds diverged)" if n else "")


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    fields = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def variant_label(r: dict[str, Any]) -> str:
    """A run's or row's model in words: its mixer, and its channel mixer and residual where the grid varies them."""
    return " ".join([str(r["mixer"]), *(str(r[c]) for c in VARIANT if r.get(c))])


def varied(rows: list[dict[str, Any]]) -> list[str]:
    """The variant columns (channel, residual) that the rows' grid varied."""
    return [c for c in VARIANT if any(r.get(c, "") for r in rows)]


def sparse(rows: list[dict[str, Any]]) -> bool:
    """Whether some row's model uses fewer parameters per token than it has (a mixture of experts)."""
    return any(r.get("active_params", r["num_params"]) != r["num_params"] for r in rows)


def markdown_table(rows: list[dict[str, Any]], task: str = "mqar") -> str:
    m, extra = METRICS[task], varied(rows)
    header = ["mixer", *extra, "d_model", "heads", "seq_len", *(f"{label} (mean ± std)" for label in m.labels),
              "seeds", "best lr", "params", *(["active params"] if sparse(rows) else []), "state (floats/seq)",
              "tokens/s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        scores = [score_text(r, k, task) for k in m.reported]
        cells = [r["mixer"], *(r[c] for c in extra), r["d_model"], r.get("heads", ""), r["seq_len"], *scores,
                 r["seeds"], r["best_lrs"] or "-", f"{r['num_params']:,}",
                 *([f"{r['active_params']:,}"] if sparse(rows) else []),
                 f"{r['state_size']:,}", f"{r['tokens_per_second']:,.0f}"]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines)


def routing_table(rows: list[dict[str, Any]]) -> str:
    """The channel mixers' statistics on the last evaluation, valid and test (mean over layers, then over seeds),
    for the rows that have any ("" if none): experts per token, dropped-token fraction, router entropy (nats),
    learners per token and FLOPs fraction (adaptive computation), active fraction of hidden dimensions."""
    keys = [k for k in ROUTING if any(k in r for r in rows)]
    if not keys:
        return ""
    extra = varied(rows)
    header = ["mixer", *extra, "d_model", "seq_len", *(k.replace("_", " ") for k in keys)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        if any(k in r for k in keys):
            cells = [r["mixer"], *(r[c] for c in extra), r["d_model"], r["seq_len"],
                     *(f"{r[k]:.3f}" if k in r else "-" for k in keys)]
            lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines)


def extrapolation_rows(records: list[dict[str, Any]], task: str) -> list[dict[str, Any]]:
    """Length generalisation: per cell and test length (the records' ``accuracy/len<T>``), the accuracy's mean,
    std, lowest and highest over seeds (best learning rate per seed, diverged seeds left out)."""
    groups: dict[tuple, list[float]] = defaultdict(list)
    for r in best_over_lrs(records, task):
        if diverged(r):
            continue
        for key, value in r.items():
            if key.startswith("accuracy/len"):
                groups[tuple(r.get(c, "") for c in CELL) + (int(key.removeprefix("accuracy/len")),)].append(value)
    rows = []
    for key, values in sorted(groups.items(), key=lambda kv: (str(kv[0][0]), kv[0][3], kv[0][4], kv[0][5])):
        rows.append({**dict(zip((*CELL, "test_len"), key, strict=True)), "seeds": len(values),
                     "accuracy_mean": statistics.fmean(values),
                     "accuracy_std": statistics.stdev(values) if len(values) > 1 else 0.0,
                     "accuracy_min": min(values), "accuracy_max": max(values)})
    return rows


def extrapolation_table(rows: list[dict[str, Any]]) -> str:
    """Accuracy (mean ± std over seeds) by test length, one line per model and training length."""
    lengths = sorted({r["test_len"] for r in rows})
    cells: dict[tuple, dict[int, dict[str, Any]]] = defaultdict(dict)
    for r in rows:
        cells[(variant_label(r), r["d_model"], r["seq_len"])][r["test_len"]] = r
    header = ["mixer", "d_model", "trained at", *(f"test {T}" for T in lengths)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for (label, d, T), by_len in cells.items():
        scores = [f"{by_len[n]['accuracy_mean']:.3f} ± {by_len[n]['accuracy_std']:.3f}" if n in by_len else "-"
                  for n in lengths]
        lines.append("| " + " | ".join(map(str, [label, d, T, *scores])) + " |")
    return "\n".join(lines)
