"""The report of a ``gatelab compare`` run: summary table, raw CSV, markdown and a plot in one folder."""
from __future__ import annotations

import hashlib
import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ..config import to_dict
from ..train.config import TrainConfig
from ..train.run import environment, write_json_atomic
from ..train.tasks import task_class
from .plots import (
    plot_accuracy_vs_length,
    plot_accuracy_vs_state,
    plot_bars,
    plot_expert_load,
    plot_extrapolation,
    plot_learning_curves,
)
from .tables import (
    METRICS,
    best_over_lrs,
    diverged,
    extrapolation_rows,
    extrapolation_table,
    markdown_table,
    routing_table,
    score_text,
    sparse,
    summarize,
    variant_label,
    varied,
    write_csv,
)


def write_compare_report(records: list[dict[str, Any]], grid: Any, out_dir: Path, command: str,
                         planned: int | None = None) -> dict[str, Path]:
    """Write ``results.csv`` (every run), ``summary.csv`` (per cell), ``report.md`` and the task's plots: for
    MQAR ``accuracy.png`` (against length) and ``recall_vs_state.png`` (against state size); for language
    modelling ``perplexity.png`` and ``learning_curves.png`` (valid perplexity against training tokens).
    ``planned``: the number of runs in the grid, when ``records`` covers only those finished so far."""
    out_dir = Path(out_dir)
    rows = summarize(records, grid.task)
    paths = {name: out_dir / name for name in ("results.csv", "summary.csv", "report.md")}
    write_csv(records, paths["results.csv"])
    write_csv(rows, paths["summary.csv"])
    base = to_dict(grid.base)
    if grid.task == "mqar":
        paths |= {name: out_dir / name for name in ("accuracy.png", "recall_vs_state.png")}
        plot_accuracy_vs_length(rows, paths["accuracy.png"])
        plot_accuracy_vs_state(rows, paths["recall_vs_state.png"])
        body = _mqar_text(rows, base)
    elif grid.task == "lm":
        paths |= {name: out_dir / name for name in ("perplexity.png", "learning_curves.png")}
        plot_bars(rows, paths["perplexity.png"], (("valid_ppl", "valid"), ("test_ppl", "test")),
                  "perplexity (lower is better)")
        plot_learning_curves(valid_curves(records, out_dir, grid.base), paths["learning_curves.png"],
                             "valid perplexity")
        loads = expert_loads(records, out_dir)
        if loads:
            paths["expert_load.png"] = out_dir / "expert_load.png"
            plot_expert_load(loads, paths["expert_load.png"])
        body = _lm_text(rows, base, grid.match_params, bool(loads))
    else:
        body = _task_text(records, rows, grid, base, out_dir, paths)
    text = [
        f"# gatelab compare: {_title(grid.task, base)}",
        "",
        f"Command: `{command}`",
        "",
        *([] if planned in (None, len(records)) else [
            f"**Partial:** {len(records)} of the grid's {planned} runs had finished when this report was written.",
            ""]),
        *_diverged_text(records, grid.task),
        *body,
        *([f"- channel mixers {grid.channels}"] if grid.channels else []),
        *([f"- residual connections {grid.residuals}"] if grid.residuals else []),
        f"- mixers {grid.mixers}, sequence lengths {grid.seq_lens}, d_model {grid.d_models}, seeds {grid.seeds}, "
        f"learning rates {grid.lrs}",
        f"- {base['model']['n_layers']} layers, heads as in the table, {_pairing_text(grid, base)}, channel "
        f"mixer {base['model']['channel']}; "
        f"{_steps_text(grid, records)} of batch {base['batch_size']}, evaluation every {base['eval_every']} steps",
        "",
        "## Environment",
        "",
        *[f"- {k}: {v}" for k, v in environment(grid.base.device).items()],
        "",
    ]
    paths["report.md"].write_text("\n".join(text))
    write_json_atomic(out_dir / "grid.json", {"command": command, "grid": {**{k: getattr(grid, k) for k in (
        "mixers", "seq_lens", "d_models", "seeds", "lrs", "match_params", "budget_minutes", "pairing", "channels",
        "residuals")},
        "base": base}})
    return paths


def _title(task: str, base: dict[str, Any]) -> str:
    if task == "mqar":
        return "MQAR"
    if task == "lm":
        return "language modelling on " + base["lm"]["data"]
    return f"{task} ({task_class(task).description})"


def _task_text(records: list[dict[str, Any]], rows: list[dict[str, Any]], grid: Any, base: dict[str, Any],
               out_dir: Path, paths: dict[str, Path]) -> list[str]:
    """The body of a classification, forecasting or synthetic next-token report, and its plots (added to
    ``paths``)."""
    task = grid.task
    cls = task_class(task)
    settings = base[cls.field] if cls.field else {}
    if task in ("selective-copying", "induction-heads"):
        paths["accuracy.png"], paths["extrapolation.png"] = out_dir / "accuracy.png", out_dir / "extrapolation.png"
        plot_accuracy_vs_length(rows, paths["accuracy.png"], y_label="{}")
        lengths = extrapolation_rows(records, task)
        plot_extrapolation(lengths, paths["extrapolation.png"])
        what = ["Accuracy is the fraction of scored positions predicted right on held-out sequences (the final",
                "evaluation, best learning rate per seed, then mean ± std over seeds); the length table tests the",
                "same models on sequences longer than they were trained on.", "", markdown_table(rows, task), "",
                extrapolation_table(lengths), "", "![accuracy](accuracy.png)", "",
                "![length generalisation](extrapolation.png)"]
    elif task == "forecast":
        paths["scores.png"] = out_dir / "scores.png"
        plot_bars(rows, paths["scores.png"], (("test_mse", "test MSE"), ("test_mae", "test MAE")),
                  "error on standardised data (lower is better)")
        what = ["MSE and MAE over every forecast value of the test windows, on data standardised with the training",
                "split's mean and std (as Informer reports them), at the evaluation with the lowest valid MSE; best",
                "learning rate per seed, then mean ± std over seeds. seq_len is the horizon.", "",
                markdown_table(rows, task), "", "![scores](scores.png)"]
    else:
        paths["scores.png"] = out_dir / "scores.png"
        plot_bars(rows, paths["scores.png"], (("test_accuracy", "test"), ("valid_accuracy", "valid")), "accuracy")
        what = ["Accuracy on the test split at the evaluation with the best valid accuracy, best learning rate per",
                "seed, then mean ± std over seeds.", "", markdown_table(rows, task), "", "![scores](scores.png)"]
    if cls.reference:
        what += ["", "The papers' numbers, from much larger models trained far longer (another scale): "
                 f"{cls.reference}."]
    model = base["model"]
    head = base["forecaster"] if task == "forecast" else base["classifier"] if task.startswith("lra-") else {}
    return [*what, "", "## Settings", "",
            f"- {'bidirectional' if model['bidirectional'] else 'causal'} backbone"
            + (f" ({model['bidirectional_params']} parameters, {model['bidirectional_combine']} combine)"
               if model["bidirectional"] else "") + (f"; head {head}" if head else ""),
            f"- data: {settings}"]


def _diverged_text(records: list[dict[str, Any]], task: str) -> list[str]:
    """What the report says about runs that diverged (nothing if none did)."""
    n = sum(diverged(r) for r in records)
    if not n:
        return []
    worst = "perplexity inf" if task == "lm" else "MSE inf" if task == "forecast" else "accuracy 0"
    return [f"**Diverged:** {n} of {len(records)} runs stopped on a non-finite loss or gradient (`diverged` and "
            f"`diverged_at` in results.csv, where they score {worst}). Each seed's best learning rate is chosen "
            "among its runs that did not diverge; a seed whose runs all diverged is counted in the table, not "
            "averaged.", ""]


def _pairing_text(grid: Any, base: dict[str, Any]) -> str:
    if grid.pairing == "base_conv":
        return "layers alternating Zoology's gated BaseConv and the mixer (its Hybrid), no short convolution"
    kernel = base["model"]["short_conv"]
    return f"an ungated short convolution of kernel {kernel} ahead of every mixer" if kernel else "no short convolution"


def _steps_text(grid: Any, records: list[dict[str, Any]]) -> str:
    if not grid.budget_minutes:
        return f"{grid.base.max_steps} steps"
    steps = {r["mixer"]: r["steps"] for r in records}
    return (f"a budget of {grid.budget_minutes:g} minutes of training per run, as steps measured per model on this "
            "machine (" + ", ".join(f"{m} {s}" for m, s in steps.items()) + " steps)")


def _mqar_text(rows: list[dict[str, Any]], base: dict[str, Any]) -> list[str]:
    return [
        "Accuracy is Zoology's MQAR accuracy on held-out sequences (fraction of queried keys whose value is",
        "predicted), for the best learning rate of each cell and seed, then mean ± std over seeds.",
        "State is the number of floats a mixer holds per sequence at that length (the KV cache for attention).",
        "Tokens/s is training throughput, median over seeds (each seed's best-lr run), on the threads each run had",
        "(`threads` in results.csv; a sweep with `--workers 2` on 2 cores gives each run one).",
        "",
        markdown_table(rows, "mqar"),
        "",
        "In the plots a marker is the mean over seeds and its bar spans the lowest to the highest seed.",
        "",
        "![accuracy against sequence length](accuracy.png)",
        "",
        "![accuracy against state size](recall_vs_state.png)",
        "",
        "## Settings",
        "",
        f"- kv pairs: {base['mqar']['num_kv_pairs']} (0 means seq_len // 16); vocabulary {base['mqar']['vocab_size']};"
        f" {base['mqar']['train_examples']} training and {base['mqar']['test_examples']} test sequences per cell; "
        f"early stop at accuracy {base['target_accuracy']}",
    ]


def _lm_text(rows: list[dict[str, Any]], base: dict[str, Any], matched: bool, loads: bool) -> list[str]:
    lm = base["lm"]
    whole = "the whole valid and test splits" if not lm["eval_tokens"] else f"the first {lm['eval_tokens']} tokens " \
        "of valid and test\n(a quick check, not comparable with published numbers)"
    return [
        f"Perplexity is exp of the mean next-token loss over {whole},",
        "in consecutive windows of seq_len tokens (every token predicted once). For each seed, the learning rate and",
        "the evaluation with the lowest valid perplexity are kept; the table gives mean ± std over seeds.",
        *([_matched_text(rows)] if matched else []),
        "",
        markdown_table(rows, "lm"),
        "",
        *(["Channel mixers on the last evaluation, valid and test splits together (mean over layers, then over",
           "seeds): experts per token, the fraction of routed slots dropped by the capacity limit, the router's",
           "entropy in nats, learners per token and the fraction of the full FFN's FLOPs (adaptive computation), the",
           "active fraction of hidden units.",
           "", routing_table(rows), ""] if routing_table(rows) else []),
        *(["![expert load](expert_load.png)", ""] if loads else []),
        "![perplexity](perplexity.png)",
        "",
        "![learning curves](learning_curves.png)",
        "",
        "## Settings",
        "",
        f"- corpus {lm['data']}, tokenizer {lm['tokenizer']}"
        + (f" (vocabulary {lm['vocab_size']})" if lm["vocab_size"] else ""),
    ]


def _matched_text(rows: list[dict[str, Any]]) -> str:
    what = " and ".join(["mixer", *varied(rows)])
    if sparse(rows):
        return (f"Models are parameter-matched to the first {what} by their channel mixer's width (d_ff): on the "
                "parameters one token uses (a mixture of experts: its router, shared and top-k experts; `params` "
                "counts all of them).")
    return f"Models are parameter-matched to the first {what} by their channel mixer's width (d_ff)."


def expert_loads(records: list[dict[str, Any]], out_dir: Path) -> dict[str, list[list[float]]]:
    """Each model's per-layer expert load on its last evaluation (valid and test splits; its first seed's best-lr
    run), for the models whose channel mixers report one."""
    loads: dict[str, list[list[float]]] = {}
    for r in sorted(best_over_lrs(records, "lm"), key=lambda r: r["seed"]):
        label = f"{variant_label(r)} d{r['d_model']} T{r['seq_len']}"
        path = out_dir / "runs" / r["run"] / "result.json"
        if label in loads or diverged(r) or not path.exists():
            continue
        stats = json.loads(path.read_text()).get("channel_stats", {})
        layers = [s["load"] for s in stats.values() if "load" in s]
        if layers:
            loads[label] = layers
    return loads


def valid_curves(records: list[dict[str, Any]], out_dir: Path, base: Any) -> dict[str, list[tuple[int, float]]]:
    """Valid perplexity against training tokens for each cell's best-lr runs, averaged over seeds."""
    curves: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in best_over_lrs(records, "lm"):
        if diverged(r):
            continue
        label = f"{variant_label(r)} d{r['d_model']} T{r['seq_len']}"
        tokens_per_step = base.batch_size * r["seq_len"]
        for line in (out_dir / "runs" / r["run"] / "metrics.jsonl").read_text().splitlines():
            entry = json.loads(line)
            if "eval/valid/ppl" in entry:
                curves[label][entry["step"] * tokens_per_step].append(entry["eval/valid/ppl"])
    return {label: [(t, statistics.fmean(v)) for t, v in sorted(pts.items())] for label, pts in curves.items()}


def print_summary(records: list[dict[str, Any]], task: str = "mqar", console: Console | None = None) -> None:
    console = console or Console()
    m = METRICS[task]
    title = {"mqar": "MQAR accuracy", "lm": "perplexity (lower is better)"}.get(
        task, f"{task}: {', '.join(m.labels)} ({'higher' if m.higher_is_better else 'lower'} is better)")
    table = Table(title=f"{title} (best lr per seed; mean ± std over seeds)")
    rows = summarize(records, task)
    extra, active = varied(rows), sparse(rows)
    for col in ("mixer", *extra, "d_model", "heads", "seq_len", *m.labels, "params", *(["active"] if active else []),
                "state", "tokens/s"):
        table.add_column(col, justify="left" if col in ("mixer", *extra) else "right")
    for r in rows:
        scores = [score_text(r, k, task) for k in m.reported]
        table.add_row(r["mixer"], *(r[c] for c in extra), str(r["d_model"]), str(r.get("heads", "")),
                      str(r["seq_len"]), *scores, f"{r['num_params']:,}",
                      *([f"{r['active_params']:,}"] if active else []), f"{r['state_size']:,}",
                      f"{r['tokens_per_second']:,.0f}")
    console.print(table)


# TrainConfig fields added after grids were first named, at their defaults: left out of the name, so a grid that
# does not set them keeps the folder it had (and resumes there).
TASK_FIELDS = ("listops", "lra_text", "pathfinder", "lra_image", "selective_copying", "induction_heads", "forecast",
               "classifier", "forecaster")
FINETUNE_FIELDS = ("init_from", "init_from_sha256", "tune", "lora")
LATER_FIELDS: dict[str, Any] = {"backend": "auto", "compile": False, "log": [], "mlflow_uri": "",
                                **{k: to_dict(TrainConfig())[k] for k in TASK_FIELDS + FINETUNE_FIELDS}}
LATER_MODEL_FIELDS: dict[str, Any] = {"channel_options": {}, "residual": "add", "residual_options": {}, "chains": 1,
                                      "bidirectional": False, "bidirectional_params": "shared",
                                      "bidirectional_combine": "mean", "loop": 1, "loop_pre": 0, "loop_post": 0,
                                      "learned_initial_state": False}


def grid_fingerprint(grid: Any) -> str:
    """A short stable name for a grid, so re-running the same command resumes in the same folder."""
    keys = ("mixers", "seq_lens", "d_models", "seeds", "lrs", "match_params", "budget_minutes")
    pairing = {} if grid.pairing == "short_conv" else {"pairing": grid.pairing}   # (older folders: short_conv)
    pairing |= {k: getattr(grid, k) for k in ("channels", "residuals") if getattr(grid, k) is not None}
    base = {k: v for k, v in to_dict(grid.base).items() if LATER_FIELDS.get(k, object()) != v}
    base["model"] = {k: v for k, v in base["model"].items() if LATER_MODEL_FIELDS.get(k, object()) != v}
    payload = json.dumps({k: getattr(grid, k) for k in keys} | pairing | {"base": base}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:10]
