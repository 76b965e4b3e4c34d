"""The ``gatelab`` command: parse arguments, build configs, call train / report. Nothing else lives here."""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import __version__, layers  # noqa: F401  (importing layers registers the mixers)
from .cli_listing import cmd_mixers, cmd_tasks
from .cli_parser import build_parser
from .cli_pretrained import cmd_convert, cmd_eval, cmd_linearize, cmd_retrofit_gate
from .config import ConfigError, apply_overrides, from_dict
from .memory import keep_freed_memory
from .presets import TASK_PRESETS, preset, safe_name
from .report.compare import grid_fingerprint, print_summary, write_compare_report
from .tasks.text import tokenized_corpus
from .tasks.text.corpora import LOADERS
from .train.config import TrainConfig, check_buildable, check_device
from .train.executors import Executor, RunsFailed, make_executor
from .train.loop import train
from .train.sweep import run_sweep
from .train.tracking import check_available

# TrainConfig's model defaults follow Zoology's MQAR protocol; language models get a channel mixer instead, and the
# other tasks a smaller model of the same kind.
LM_MODEL_DEFAULTS = ["model.channel=swiglu", "model.short_conv=0", "model.n_heads=4", "model.n_layers=4",
                     "model.d_model=128"]
TASK_MODEL_DEFAULTS = ["model.channel=swiglu", "model.short_conv=0", "model.n_heads=4", "model.n_layers=2",
                       "model.d_model=64"]
# the config field --data sets, per task
DATA_FIELDS = {"lm": "lm.data", "forecast": "forecast.data", "lra-image": "lra_image.path"}


def model_defaults(task: str) -> list[str]:
    return [] if task == "mqar" else LM_MODEL_DEFAULTS if task == "lm" else TASK_MODEL_DEFAULTS


def data_field(task: str) -> str:
    """The config field ``--data`` sets for ``task`` (an error for tasks whose data is generated)."""
    if task not in DATA_FIELDS:
        raise ConfigError(f"--data applies to --task {', '.join(DATA_FIELDS)} (this is --task {task}, whose data is "
                          "generated or packaged; its options are --set fields)")
    return DATA_FIELDS[task]



QUICK_NOTE = ("quick preset: a seconds-long pipeline check (tiny models, a few steps); its scores sit near chance "
              "and say nothing about the mixers. Run without --quick for the comparison.")


def default_run_folder(cfg: TrainConfig) -> Path:
    """``runs/train-<task>[-<corpus>]-<mixer>[-<tune>]-s<seed>`` (the tune of a run from ``init_from``, whose
    model's mixer it names), in characters every filesystem accepts."""
    data = cfg.lm.data if cfg.lm.data in LOADERS else Path(cfg.lm.data).resolve().name
    mixer = cfg.resolved().model.mixer if cfg.init_from else cfg.model.mixer
    parts = ["train", cfg.task, *([data] if cfg.task == "lm" else []), mixer, *([cfg.tune] if cfg.init_from else []),
             f"s{cfg.seed}"]
    return Path("runs") / safe_name("-".join(parts))


def resume(args: argparse.Namespace, console: Console) -> None:
    """``train --resume``: continue the run in --out with its stored config; any option that would change the
    config is refused, not ignored."""
    given = [flag for flag, value in (("--task", args.task), ("--data", args.data), ("--mixer", args.mixer),
                                      ("--hybrid", args.hybrid), ("--config", args.config), ("--set", args.set),
                                      ("--overwrite", args.overwrite or None))
             if value is not None]
    if given:
        raise ConfigError(f"--resume continues the run in --out with its stored config.json; it takes no "
                          f"{', '.join(given)} (start a new run with another --out to change the config)")
    if not args.out:
        raise ConfigError("--resume needs --out RUN_DIR, the folder of the run to continue")
    stored = Path(args.out) / "config.json"
    if not stored.is_file():
        raise ConfigError(f"nothing to resume in {args.out}: it has no config.json")
    check_run_files(args.out)
    cfg = from_dict(TrainConfig, json.loads(stored.read_text()))
    if args.log is not None:       # where the metrics are mirrored may change; what the run computes may not
        cfg.log = args.log
    check_available(cfg.log)
    check_device(cfg.device)
    result = train(cfg, args.out, progress=not args.no_progress, resume=True)
    console.print(f"resumed {args.out}: finished after {result['steps']} steps")


def read_config(path: str) -> TrainConfig:
    """The TrainConfig in the JSON file ``path`` (``--config``)."""
    if not Path(path).is_file():
        raise ConfigError(f"--config {path}: no such file")
    try:
        return from_dict(TrainConfig, json.loads(Path(path).read_text(encoding="utf-8")))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"--config {path} is not a JSON file: {e}") from None


def cmd_train(args: argparse.Namespace, console: Console) -> None:
    if args.resume:
        return resume(args, console)
    if args.mixer is not None and args.hybrid is not None:
        raise ConfigError("give --mixer or --hybrid, not both")
    cfg = read_config(args.config) if args.config else TrainConfig()
    task = args.task or cfg.task
    data = {data_field(task): args.data} if args.data is not None else {}
    mixer = args.hybrid if args.hybrid is not None else args.mixer
    given = {k: v for k, v in {"model.mixer": mixer, **data, "log": args.log}.items() if v is not None}
    cfg = apply_overrides(cfg, [f"task={task}", *(args.set or [])], values=given)
    if not args.config and not cfg.init_from:   # (with init_from the model is the folder's)
        cfg = apply_overrides(cfg, [*model_defaults(task), *(args.set or [])], values=given)
    check_device(cfg.device)
    check_available(cfg.log)
    check_buildable(cfg)
    out = Path(args.out) if args.out else default_run_folder(cfg)
    result = train(cfg, out, progress=not args.no_progress, overwrite=args.overwrite)
    if os.environ.get("RANK", "0") != "0":   # under torchrun, rank 0 reports
        return
    final = result["final"]
    shown = ("accuracy", "valid/ppl", "test/ppl", "valid/accuracy", "test/accuracy", "test/mse", "test/mae")
    scores = ", ".join(f"{k} {v:.4g}" for k, v in final.items() if k in shown)
    mixer = cfg.resolved().model.mixer if cfg.init_from else cfg.model.mixer
    trained = result["trainable_params"]
    trained = f" of which {trained:,} trained" if trained != result["num_params"] else ""
    console.print(f"[bold]{mixer}[/]: {scores} after {result['steps']} steps "
                  f"({result['num_params']:,} parameters{trained}, {result['tokens_per_second']:,.0f} tokens/s)")
    console.print(f"run folder: {out}")


def cmd_compare(args: argparse.Namespace, console: Console) -> None:
    task = args.task or "mqar"
    if args.preset:
        if args.quick:
            raise ConfigError("give --preset or --quick, not both")
        grid = preset(args.preset)
        if args.task and grid.task != args.task:
            raise ConfigError(f"preset {args.preset!r} is a {grid.task} grid, not {args.task}; the {args.task} presets "
                              f"are {', '.join(TASK_PRESETS[args.task])}")
    else:
        grid = preset(TASK_PRESETS[task][1 if args.quick else 0])
    if args.data is not None:
        grid.base = apply_overrides(grid.base, [], values={data_field(grid.task): args.data})
    for name in ("mixers", "channels", "residuals", "seq_lens", "d_models", "seeds", "lrs", "budget_minutes",
                 "pairing"):
        if getattr(args, name) is not None:
            setattr(grid, name, getattr(args, name))
    if args.steps is not None:
        if grid.budget_minutes:
            raise ConfigError("a time budget (--budget-minutes, or the preset's) sets each model's steps; "
                              "give --budget-minutes 0 to use --steps")
        grid.base.max_steps = args.steps
    grid.base = apply_overrides(grid.base, args.set or [], values={"log": args.log} if args.log else None)
    if args.address is None:            # (on a cluster, the nodes' devices count, not this machine's)
        check_device(grid.base.device)
    check_available(grid.base.log)
    executor = executor_from(args, grid.base.device)
    out = Path(args.out) if args.out else Path("runs") / f"compare-{grid_fingerprint(grid)}"
    vocab = tokenized_corpus(grid.base.lm.data, grid.base.lm.tokenizer, grid.base.lm.vocab_size,
                             grid.base.lm.cache)[0].vocab_size if grid.task == "lm" else None
    runs = grid.runs(vocab, out / "budget.json")
    variants = "".join(f"{len(v)} {name} x " for name, v in (("channel mixers", grid.channels),
                                                              ("residuals", grid.residuals)) if v)
    console.print(f"{len(runs)} runs ({len(grid.mixers)} mixers x {variants}{len(grid.d_models)} widths x "
                  f"{len(grid.seq_lens)} lengths x {grid.seeds} seeds x {len(grid.lrs)} lrs) into {out}")
    failed = None
    try:
        records = run_sweep(runs, out, progress=not args.no_progress, executor=executor,
                            train_missing=not args.report_only, overwrite=args.overwrite)
    except RunsFailed as e:             # the runs that finished are reported, then the failures
        if not e.records:
            raise
        records, failed = e.records, e
    if not records:
        raise ConfigError(f"no run in {out} has finished yet; nothing to report")
    if len(records) < len(runs):
        console.print(f"{len(records)} of {len(runs)} runs finished; the report covers those")
    command = "gatelab " + " ".join(shlex.quote(a) for a in args.argv)
    paths = write_compare_report(records, grid, out, command, planned=len(runs))
    print_summary(records, grid.task, console)
    if args.quick or args.preset in ("quick", "lm-quick"):
        console.print(QUICK_NOTE)
    console.print("report: " + ", ".join(str(p) for p in paths.values()))
    if failed:
        raise failed


def executor_from(args: argparse.Namespace, device: str) -> Executor:
    """The executor of ``--executor`` and its flags (``device``: where the runs train)."""
    return make_executor(args.executor, args.workers, args.address, args.cpus_per_run,
                         args.gpus_per_run, args.keep_going, device)


def cmd_generate(args: argparse.Namespace, console: Console) -> None:
    import torch

    from .hf import load_run
    from .tasks.text import encode_prompt

    check_run_files(args.run)
    model, tokenizer = load_run(args.run)
    if tokenizer is None:
        raise ConfigError(f"{args.run} has no tokenizer (an MQAR run?); generate needs a language-model run")
    ids = encode_prompt(tokenizer, args.prompt)
    if not ids:
        raise ConfigError("the prompt is empty after tokenisation")
    limit = model.model.config.max_seq_len
    if len(ids) + args.max_new_tokens > limit:
        raise ConfigError(f"the prompt ({len(ids)} tokens) + --max-new-tokens {args.max_new_tokens} = "
                          f"{len(ids) + args.max_new_tokens} tokens exceed the model's max_seq_len={limit}")
    torch.manual_seed(args.seed)
    sample = args.temperature > 0
    prompt = torch.tensor([ids])
    out = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=args.max_new_tokens,
                         do_sample=sample, temperature=args.temperature if sample else None,
                         top_k=args.top_k if sample else None, pad_token_id=0)
    continuation = tokenizer.decode(out[0, len(ids):].tolist())
    console.print(args.prompt, end="", style="bold", markup=False, highlight=False)
    console.print(("" if tokenizer.kind in ("byte", "gpt2", "bpe", "hf") else " ") + continuation,
                  markup=False, highlight=False)


def check_run_files(run: str) -> None:
    """Name the damaged file of a half-written or damaged run folder before anything loads it: every JSON file must
    parse and every safetensors file must have a complete header (a truncated file fails here)."""
    from safetensors import SafetensorError, safe_open

    root = Path(run)
    for path in sorted([*root.glob("*.json"), *root.glob("model/*.json")]):
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"{path} is damaged or half-written (not valid JSON: {e})") from None
    for path in sorted([*root.glob("*.safetensors"), *root.glob("model/*.safetensors"),
                        *root.glob("checkpoints/*.safetensors")]):
        try:
            with safe_open(path, framework="pt"):
                pass
        except SafetensorError as e:
            raise ConfigError(f"{path} is damaged or half-written (safetensors: {e})") from None


def cmd_analyze(args: argparse.Namespace, console: Console) -> None:
    from .analysis import AnalysisConfig, analyze_run
    from .analysis.report import summary_rows
    from .analysis.trajectory import trajectory

    given = {"eval_tokens": args.eval_tokens, "bits": args.bits, "quant_scope": args.quant_scope,
             "batch_size": args.batch_size, "calibration_batches": args.calibration_batches}
    if args.hf is not None:
        result, out = analyze_hf_source(args, {k: v for k, v in given.items() if v is not None})
        title = f"analysis of {result['model']} ({result['architecture']}) on {result['eval']['data']}"
    else:
        if args.run is None:
            raise ConfigError("give a run folder (gatelab analyze RUN) or a Hugging Face model (--hf PATH)")
        for flag, value in (("--data", args.data), ("--seq-len", args.seq_len)):
            if value is not None:
                raise ConfigError(f"{flag} applies to --hf: a run is measured on its own test split and length")
        if not (Path(args.run) / "config.json").is_file():
            raise ConfigError(f"{args.run} is not a run folder: it has no config.json (train one with gatelab train "
                              "--task lm)")
        check_run_files(args.run)
        cfg = AnalysisConfig(**{k: v for k, v in {**given, "quant_scope": args.quant_scope or "full"}.items()
                                if v is not None})
        out = Path(args.out) if args.out else Path(args.run) / "analysis"
        if args.trajectory:
            points = trajectory(args.run, out, cfg)
            console.print(f"{len(points)} checkpoints measured: {out / 'trajectory.md'}")
            return
        result = analyze_run(args.run, out, cfg)
        title = f"analysis of {args.run} ({result['mixer']})"
    table = Table(title=title)
    table.add_column("measurement")
    table.add_column("value", justify="right")
    for k, v in summary_rows(result):
        table.add_row(k, v)
    console.print(table)
    console.print(f"report: {out / 'analysis.md'}")


def analyze_hf_source(args: argparse.Namespace, given: dict) -> tuple[dict, Path]:
    """``analyze --hf``: load the model named by ``--hf`` and measure it on ``--data``; the report folder."""
    import dataclasses

    from .analysis.hf_analyze import DEFAULT_SEQ_LEN, HF_DEFAULTS, analyze_hf_to
    from .pretrained import load_pretrained

    if args.run is not None or args.trajectory:
        raise ConfigError(f"--hf measures a Hugging Face model; drop {args.run or '--trajectory'} (a run folder "
                          "and --trajectory are for gatelab runs)")
    data = "ptb" if args.data is None else args.data
    if data not in LOADERS and not (data.strip() and Path(data).is_dir()):
        raise ConfigError(f"--data {data!r}: give one of {', '.join(LOADERS)} or a folder of train/valid/test text "
                          "files")
    cfg = dataclasses.replace(HF_DEFAULTS, **given)
    hf = load_pretrained(args.hf)
    out = Path(args.out) if args.out else Path("runs") / f"analyze-{safe_name(hf.name)}-{safe_name(Path(data).name)}"
    return analyze_hf_to(hf.model, hf.tokenizer, out, data, args.seq_len or DEFAULT_SEQ_LEN, cfg, hf.name,
                         str(hf.path)), out


def cmd_reproduce(args: argparse.Namespace, console: Console) -> None:
    from .reproduce import DEFAULT_DATA, REPRODUCTIONS

    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    if args.data is not None and args.name not in DEFAULT_DATA:
        raise ConfigError(f"--data: reproduce {args.name} generates its data; --data applies to "
                          f"{', '.join(DEFAULT_DATA)}")
    data = DEFAULT_DATA.get(args.name) if args.data is None else args.data
    if data is not None and not data.strip():
        raise ConfigError("--data is empty: give a corpus (ptb, imdb, shakespeare, kjv) or a folder of text files "
                          "(informer-ett: etth1, etth2 or a CSV)")
    out = Path(args.out) if args.out else Path("runs") / f"reproduce-{args.name}-{mode}"
    command = "gatelab " + " ".join(shlex.quote(a) for a in args.argv)
    reproduce = REPRODUCTIONS[args.name]
    executor = executor_from(args, "cpu")
    report = reproduce(mode, args.seeds, out, data, command, progress=not args.no_progress, executor=executor)
    console.print(report.read_text(), markup=False, highlight=False, soft_wrap=True)
    console.print(f"report: {report}")


def cmd_install_data(args: argparse.Namespace, console: Console) -> None:
    from .tasks.series import install_ett
    from .tasks.text.assets import install

    if args.link and not args.ett:
        raise ConfigError("--link applies to --ett DIR")
    if args.ett:
        install_ett(args.ett, link=args.link, log=console.print)
    if args.names or not args.ett:
        install(args.names or None, log=console.print)   # no names: all but the optional ones


COMMANDS = {"tasks": cmd_tasks, "mixers": cmd_mixers, "train": cmd_train, "compare": cmd_compare,
            "generate": cmd_generate, "analyze": cmd_analyze, "reproduce": cmd_reproduce,
            "install-data": cmd_install_data, "convert": cmd_convert, "eval": cmd_eval,
            "retrofit-gate": cmd_retrofit_gate, "linearize": cmd_linearize}


def make_console() -> Console:
    """A console for the terminal; when the output is piped or redirected, one that never cuts or wraps a table
    row or a line at 80 columns (unless COLUMNS says otherwise)."""
    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(width=100_000)
    return console


def error_message(e: BaseException) -> str:
    """One line for a user's mistake: the whole message, with the file name where the error has one."""
    if isinstance(e, KeyError) and e.args and isinstance(e.args[0], str):
        return e.args[0]   # the registries' messages (str() of a KeyError would quote them)
    if isinstance(e, UnicodeDecodeError):
        return f"a file is not UTF-8 text ({e})"
    return str(e) or type(e).__name__


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:   # argparse has printed the usage and what was wrong (or --help / --version)
        return e.code if isinstance(e.code, int) else 2
    args.argv = argv
    console = make_console()
    keep_freed_memory()
    try:
        COMMANDS[args.command](args, console)
    except (ConfigError, KeyError, ValueError, OSError, ImportError, FloatingPointError) as e:
        console.print(f"[red]error:[/] {escape(error_message(e))}", highlight=False, soft_wrap=True)
        return 2
    except RunsFailed as e:     # runs of a sweep raised: their tracebacks, no traceback of this process
        console.print(f"[red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
