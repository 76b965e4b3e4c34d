"""The commands on pretrained models: ``convert``, ``retrofit-gate``, ``eval`` (lm-eval) and ``linearize``."""
from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from rich.console import Console
from rich.table import Table

from .config import ConfigError
from .presets import safe_name
from .train.config import check_device


def cmd_convert(args: argparse.Namespace, console: Console) -> None:
    from .pretrained.export import convert_to_folder

    r = convert_to_folder(args.hf, args.out, overwrite=args.overwrite)
    console.print(f"{r['architecture']} ({r['params']:,} parameters) from {r['path']} -> {args.out}: logits max |diff| "
                  f"{r['logits_max_abs_diff']:.2e} (relative RMS {r['logits_relative_rms_diff']:.2e}) on "
                  f"{r['probe_tokens']} tokens", markup=False, highlight=False)


def cmd_retrofit_gate(args: argparse.Namespace, console: Console) -> None:
    from .pretrained.retrofit_report import write_retrofit_report
    from .pretrained.retrofit_run import load_source, resolve_config, retrofit_experiment

    source = load_source(args.source)
    given = {k: getattr(args, k) for k in ("data", "steps", "lr", "batch_size", "seq_len", "bos", "granularity",
                                            "seeds", "eval_tokens", "device")}
    cfg = resolve_config(source, given)
    out = Path(args.out) if args.out else Path("runs") / safe_name(f"retrofit-{source.name}-{cfg.granularity}")
    result = retrofit_experiment(source, cfg, out, progress=not args.no_progress, overwrite=args.overwrite)
    report = write_retrofit_report(out, result, "gatelab " + " ".join(shlex.quote(a) for a in args.argv))
    console.print(report.read_text(), markup=False, highlight=False, soft_wrap=True)
    console.print(f"report: {report}")


def cmd_eval(args: argparse.Namespace, console: Console) -> None:
    import logging

    from .lmeval.tasks import TASKS, task_names

    if args.list_tasks:
        table = Table(title="local lm-eval tasks (--tasks)")
        for col in ("task", "kind", "description"):
            table.add_column(col)
        for task in TASKS.values():
            table.add_row(task.name, task.kind, task.description)
        console.print(table)
        return
    if args.model is None or args.tasks is None:
        raise ConfigError("eval needs MODEL and --tasks (e.g. gatelab eval runs/my-lm --tasks ptb_wordperplexity); "
                          "gatelab eval --list-tasks lists the tasks")
    tasks = task_names(args.tasks)
    try:
        check_device(args.device)
    except RuntimeError as e:     # torch's error for a string that is no device at all
        raise ConfigError(f"--device {args.device!r}: {e}") from None
    from .lmeval import evaluate, load_eval_model, metric_rows, write_results
    from .lmeval.load import is_gatelab_folder

    logging.getLogger("lm_eval").setLevel(logging.ERROR)
    model = load_eval_model(args.model, args.max_length)
    path = Path(args.model)
    out = Path(args.out) if args.out else path / "lm_eval" if path.is_dir() and is_gatelab_folder(path) else \
        Path("runs") / safe_name(f"lm_eval-{model.name}")
    results = evaluate(model, tasks, limit=args.limit, batch_size=args.batch_size, device=args.device)
    json_file, md_file = write_results(results, out)
    table = Table(title=f"lm-eval: {model.name} (windows of {model.max_length} tokens)")
    for col in ("task", "metric", "value"):
        table.add_column(col)
    for task, metric, value in metric_rows(results):
        table.add_row(task, metric, f"{value:.4f}")
    console.print(table)
    console.print(f"results: {json_file}, {md_file}")


def cmd_linearize(args: argparse.Namespace, console: Console) -> None:
    from .pretrained.recovery import LinearizeOptions, run_linearization
    from .pretrained.recovery_report import write_report

    check_device(args.device)
    if args.batch_size % args.grad_accum:
        raise ConfigError(f"--batch-size {args.batch_size} must split evenly into --grad-accum {args.grad_accum} "
                          "micro-batches")
    opts = LinearizeOptions(targets=args.to, data=args.data, steps=args.steps, lr=args.lr, batch_size=args.batch_size,
                            grad_accum=args.grad_accum, seq_len=args.seq_len, lora_rank=args.lora_rank,
                            window=args.window, eval_tokens=args.eval_tokens, contexts=args.contexts,
                            cloze_items=args.cloze_items, seed=args.seed, device=args.device)
    out = Path(args.out) if args.out else Path("runs") / safe_name(f"linearize-{Path(args.source).resolve().name}")
    results = run_linearization(args.source, opts, out, progress=not args.no_progress, overwrite=args.overwrite)
    report = write_report(results, out, "gatelab " + " ".join(shlex.quote(a) for a in args.argv))
    console.print(report.read_text(), markup=False, highlight=False, soft_wrap=True)
    console.print(f"report: {report}")
