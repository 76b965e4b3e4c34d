"""The report of a ``gatelab compare`` run: summary table, raw CSV, markdown and a plot in one folder."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ..config import to_dict
from ..train.run import environment, write_json_atomic
from .plots import plot_accuracy_vs_length, plot_accuracy_vs_state
from .tables import markdown_table, summarize, write_csv


def write_compare_report(records: list[dict[str, Any]], grid: Any, out_dir: Path, command: str) -> dict[str, Path]:
    """Write ``results.csv`` (every run), ``summary.csv`` (per cell), ``report.md``, ``accuracy.png`` (against
    length) and ``recall_vs_state.png`` (against state size)."""
    out_dir = Path(out_dir)
    rows = summarize(records)
    names = ("results.csv", "summary.csv", "report.md", "accuracy.png", "recall_vs_state.png")
    paths = {name: out_dir / name for name in names}
    write_csv(records, paths["results.csv"])
    write_csv(rows, paths["summary.csv"])
    plot_accuracy_vs_length(rows, paths["accuracy.png"])
    plot_accuracy_vs_state(rows, paths["recall_vs_state.png"])
    env = environment(grid.base.device)
    base = to_dict(grid.base)
    text = [
        "# gatelab compare: MQAR",
        "",
        f"Command: `{command}`",
        "",
        "Accuracy is Zoology's MQAR accuracy on held-out sequences (fraction of queried keys whose value is",
        "predicted), for the best learning rate of each cell and seed, then mean ± std over seeds.",
        "State is the number of floats a mixer holds per sequence at that length (the KV cache for attention).",
        "",
        markdown_table(rows),
        "",
        "![accuracy against sequence length](accuracy.png)",
        "",
        "![accuracy against state size](recall_vs_state.png)",
        "",
        "## Settings",
        "",
        f"- mixers {grid.mixers}, sequence lengths {grid.seq_lens}, d_model {grid.d_models}, seeds {grid.seeds}, "
        f"learning rates {grid.lrs}",
        f"- kv pairs: {base['mqar']['num_kv_pairs']} (0 means seq_len // 16); vocabulary {base['mqar']['vocab_size']};"
        f" {base['mqar']['train_examples']} training and {base['mqar']['test_examples']} test sequences per cell",
        f"- {base['model']['n_layers']} layers, {base['model']['n_heads']} head(s), short convolution kernel "
        f"{base['model']['short_conv']} (0: none), channel mixer {base['model']['channel']}; "
        f"{base['max_steps']} steps of batch {base['batch_size']}, evaluation every {base['eval_every']} steps, "
        f"early stop at accuracy {base['target_accuracy']}",
        "",
        "## Environment",
        "",
        *[f"- {k}: {v}" for k, v in env.items()],
        "",
    ]
    paths["report.md"].write_text("\n".join(text))
    write_json_atomic(out_dir / "grid.json", {"command": command, "grid": {**{k: getattr(grid, k) for k in (
        "mixers", "seq_lens", "d_models", "seeds", "lrs")}, "base": base}})
    return paths


def print_summary(records: list[dict[str, Any]], console: Console | None = None) -> None:
    console = console or Console()
    table = Table(title="MQAR accuracy (best lr per seed; mean ± std over seeds)")
    for col in ("mixer", "d_model", "seq_len", "accuracy", "params", "state", "tokens/s"):
        table.add_column(col, justify="left" if col == "mixer" else "right")
    for r in summarize(records):
        table.add_row(r["mixer"], str(r["d_model"]), str(r["seq_len"]),
                      f"{r['accuracy_mean']:.3f} ± {r['accuracy_std']:.3f}", f"{r['num_params']:,}",
                      f"{r['state_size']:,}", f"{r['tokens_per_second']:,.0f}")
    console.print(table)


def grid_fingerprint(grid: Any) -> str:
    """A short stable name for a grid, so re-running the same command resumes in the same folder."""
    payload = json.dumps({k: getattr(grid, k) for k in ("mixers", "seq_lens", "d_models", "seeds", "lrs")}
                         | {"base": to_dict(grid.base)}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:10]
