"""``evaluate``: lm-eval-harness on a model and gatelab's local tasks; the results as lm-eval's JSON and its
markdown table, written atomically."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from .load import EvalModel
from .model import GatelabLM
from .tasks import build_tasks

BOOTSTRAP_ITERS = 1000   # lm-eval's resamples for the standard error of a cloze perplexity (acc's is closed-form)


def evaluate(model: EvalModel, tasks: list[str], limit: int | None = None, batch_size: int = 8,
             device: str = "cpu", log_samples: bool = False) -> dict[str, Any]:
    """lm-eval's ``simple_evaluate`` of ``model`` on the local ``tasks`` (``gatelab.lmeval.tasks.TASKS``), zero-shot,
    at most ``limit`` documents per task; returns lm-eval's results dict (``results``, ``configs``, ``config``...;
    with ``log_samples`` also ``samples``: every document's request, responses and metrics, per task)."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    task_objects = build_tasks(tasks)
    return simple_evaluate(model=GatelabLM(model, batch_size=batch_size, device=device), tasks=task_objects,
                           task_manager=TaskManager(include_defaults=False), limit=limit, log_samples=log_samples,
                           bootstrap_iters=BOOTSTRAP_ITERS)


def metric_rows(results: dict[str, Any]) -> list[tuple[str, str, float]]:
    """``(task, metric, value)`` for every metric of every task (standard errors left out)."""
    return [(task, key.split(",")[0], value) for task, metrics in results["results"].items()
            for key, value in metrics.items() if "," in key and "_stderr" not in key and isinstance(value, float)]


def write_atomic(path: Path, text: str) -> None:
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False,
                                     encoding="utf-8") as f:
        f.write(text)
    os.replace(f.name, path)


def write_results(results: dict[str, Any], out: str | Path) -> tuple[Path, Path]:
    """``out/results.json`` (lm-eval's dict; what JSON cannot hold, e.g. a task's functions, as text) and
    ``out/results.md`` (lm-eval's markdown table), each written under a temporary name and renamed."""
    from lm_eval.utils import handle_non_serializable, make_table

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    json_file, md_file = out / "results.json", out / "results.md"
    write_atomic(json_file, json.dumps(results, indent=2, default=handle_non_serializable) + "\n")
    info = results.get("config", {})
    header = (f"# lm-eval: {info.get('model_name', '?')}\n\nwindows of {info.get('max_length', '?')} tokens, "
              f"limit {info.get('limit')}, lm-eval {results.get('lm_eval_version', '?')}\n\n")
    write_atomic(md_file, header + make_table(results) + "\n")
    return json_file, md_file
