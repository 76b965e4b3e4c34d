"""The GPU path in one run (under 5 minutes on one H100/H200): op timings, training throughput against
transformers' Llama, and the equality checks of the op backends.

    python -m benchmarks.gpu_check [--out DIR] [--budget 270] [--repeats 5] [--smoke]
    (or python benchmarks/gpu_check.py ...; --out benchmarks/results writes the committed gpu_check.csv/.json)

(c) equality: each chunked op with ``backend="fla"`` against gatelab's torch form and the float64 recurrence
    (outputs, final states, every input gradient; relative RMS error, pass/fail): bf16 in this process with fla's
    default settings, float32 in a child process with IEEE float32 dots (tolerances in benchmarks/gpu/equality.py).
(a) ops: forward+backward of gla, simple_gla and the gated delta rule through gatelab's dispatch with the torch
    and the fla backend, fla called directly (the dispatch's overhead), and causal SDPA; T = 2k, 8k, 32k with
    B*T = 32k tokens, H = 12 heads of 64 dims (the 125M shape), bf16 inputs (the torch form computes in float32).
(b) training: tokens/s of one step (forward, loss, backward, fused AdamW) under bf16 autocast of a ~125M-parameter
    DecoderLM (d_model 768, 12 layers, 12 heads, vocabulary 32000, T 2048, SwiGLU) per mixer (attn, gated_attn,
    gla, gdn, mamba2; backend auto) and of LlamaForCausalLM of the same size (SDPA), interleaved, medians.

Timings synchronise the device around each call; medians over interleaved repeats after a warmup that also
compiles the Triton kernels. A measurement that runs out of memory reports "oom"; once the time budget is spent
the rest report "skipped (time)". Without CUDA (or with --smoke) it runs tiny shapes on the CPU, torch backend only.
"""
from __future__ import annotations

import sys
from pathlib import Path

if not __package__:   # run as a file (python benchmarks/gpu_check.py): import this checkout's benchmarks and gatelab
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import contextlib
import csv
import dataclasses
import importlib.metadata
import json
import os
import subprocess
import tempfile
from typing import Any

import torch

from benchmarks.common import benchmark_parser, positive_int, start
from benchmarks.gpu.equality import CASES, compare
from benchmarks.gpu.ops import OPS, op_timers, sdpa_timer
from benchmarks.gpu.timing import Budget, median_ms
from benchmarks.gpu.training import LLAMA, build_models, train_step
from gatelab.ops.backend import fla_ops
from gatelab.train.run import environment

NAME = "gpu_check"
FULL = {"ops_tokens": 32768, "ops_T": [2048, 8192, 32768], "H": 12, "D": 64,
        "lm": {"d_model": 768, "layers": 12, "heads": 12, "seq": 2048, "vocab": 32000}, "lm_batch": 8}
SMOKE = {"ops_tokens": 256, "ops_T": [64, 128], "H": 2, "D": 16,
         "lm": {"d_model": 32, "layers": 2, "heads": 2, "seq": 64, "vocab": 100}, "lm_batch": 2}
MIXERS = ["attn", "gated_attn", "gla", "gdn", "mamba2"]


def build_parser() -> argparse.ArgumentParser:
    parser = benchmark_parser(NAME, __doc__, repeats=5)
    parser.add_argument("--dry", dest="smoke", action="store_true", help="the same as --smoke")
    parser.add_argument("--budget", type=positive_int, default=270,
                        help="seconds after which measurements not yet started are skipped (default 270)")
    parser.add_argument("--autotune", choices=["full", "first"], default="full",
                        help="fla's kernels: full autotuning (its real use; compiling every candidate takes minutes "
                             "on a fresh machine) or the first launch configuration of each kernel (fast to compile; "
                             "its timings are fla untuned)")
    parser.add_argument("--mixers", default=",".join(MIXERS),
                        help=f"the DecoderLM mixers of the training section (default {','.join(MIXERS)})")
    parser.add_argument("--sections", default="equality,ops,training",
                        help="which sections to run, comma-separated, in this order (default: all three)")
    parser.add_argument("--float32-checks-to", type=Path, default=None,
                        help="run only the float32 equality checks and write their rows as JSON to this file "
                             "(what the main run starts in a child process with IEEE float32 Triton dots)")
    return parser


def versions() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for package in ("flash-linear-attention", "fla-core", "triton", "transformers"):
        try:
            out[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            out[package] = None
    out["cuda"] = torch.version.cuda
    out["gpu"] = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    return out


def equality_rows(dtype: torch.dtype, device: str, backend: str, show: bool = False) -> list[dict]:
    rows = []
    cases = CASES if device == "cuda" else [dataclasses.replace(c, T=c.T // 10, B=1) for c in CASES[:3]]
    for case in cases:
        try:
            new = compare(case, device, dtype, backend)
        except Exception as e:   # a kernel that fails to compile or run is a failed check, reported
            new = [{"case": case.name, "dtype": str(dtype).removeprefix("torch."), "backend": backend,
                    "ok": False, "error": f"{type(e).__name__}: {e}"[:300]}]
        if show:
            print_equality(new)
        rows += new
    return rows


def float32_checks(device: str, backend: str, budget: Budget, autotune: str) -> list[dict]:
    """float32 checks: on CUDA with fla in a child process (fla's dots in IEEE float32, its own Triton cache)."""
    if backend != "fla":
        return equality_rows(torch.float32, device, backend, show=True)
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "rows.json"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                            os.environ.get("PYTHONPATH", "")])}
        try:
            subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--float32-checks-to", str(out),
                            "--autotune", autotune],
                           env=env, check=True, timeout=max(30.0, budget.left()))
            rows = json.loads(out.read_text())
            print_equality(rows)
            return rows
        except (subprocess.SubprocessError, OSError) as e:
            return [{"case": "all", "dtype": "float32", "backend": backend, "ok": False, "error": str(e)[:300]}]


def print_equality(rows: list[dict]) -> None:
    for r in rows:
        if "error" in r:
            print(f"  {r['case']:38s} {r['dtype']:8s} FAIL {r['error']}", flush=True)
            continue
        print(f"  {r['case']:38s} {r['dtype']:8s} {r['tensor']:14s} vs torch {r['vs_torch']:.2e}  vs float64 "
              f"{r['vs_float64']:.2e}  (torch vs float64 {r['torch_vs_float64']:.2e})  tol {r['tolerance']:.0e}  "
              f"{'pass' if r['ok'] else 'FAIL'}", flush=True)


def op_rows(shape: dict, device: str, dtype: torch.dtype, fla: bool, repeats: int, budget: Budget) -> list[dict]:
    print(f"\n(a) ops, forward+backward, {str(dtype).removeprefix('torch.')}, B*T = {shape['ops_tokens']}, "
          f"H = {shape['H']}, D = {shape['D']} (ms, median of {repeats})", flush=True)
    rows = []
    H, D = shape["H"], shape["D"]
    for T in shape["ops_T"]:
        B = max(1, shape["ops_tokens"] // T)
        timers = {"sdpa causal": sdpa_timer(B, T, H, D, device, dtype)}
        for op in OPS:
            timers.update({f"{op} | {impl}": fn for impl, fn in op_timers(op, B, T, H, D, device, dtype, fla).items()})
        times = median_ms(timers, device, repeats, warmup=2, budget=budget)
        for name, ms in times.items():
            op, _, impl = name.rpartition(" | ") if " | " in name else ("sdpa", "", name)
            row = {"section": "ops", "op": op, "impl": impl, "T": T, "B": B, "H": H, "D": D,
                   "dtype": str(dtype).removeprefix("torch."), "ms": round(ms, 3) if isinstance(ms, float) else ms}
            fla_ms = times.get(f"{op} | fla direct")
            if impl == "gatelab fla" and isinstance(ms, float) and isinstance(fla_ms, float):
                row["vs_fla_direct"] = round(ms / fla_ms, 3)
            rows.append(row)
            extra = f"  ({row['vs_fla_direct']:.3f}x fla direct)" if "vs_fla_direct" in row else ""
            print(f"  T={T:6d} B={B:3d} {op:18s} {impl:14s} {row['ms']}{extra}", flush=True)
        del timers
        if device == "cuda":
            torch.cuda.empty_cache()
    return rows


def training_rows(shape: dict, device: str, repeats: int, budget: Budget, mixers: list[str]) -> list[dict]:
    lm, batch = shape["lm"], shape["lm_batch"]
    bf16 = device == "cuda" and torch.cuda.is_bf16_supported()
    print(f"\n(b) training step, {'bf16 autocast' if bf16 else 'float32'}, batch {batch} x {lm['seq']} tokens")
    nets = build_models(mixers, lm["d_model"], lm["layers"], lm["heads"], lm["seq"], lm["vocab"], device)

    def autocast() -> contextlib.AbstractContextManager:
        return torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()

    x = torch.randint(0, lm["vocab"], (batch, lm["seq"] + 1), device=device)
    steps = {name: train_step(net, x, autocast) for name, net in nets.items()}
    times = median_ms(steps, device, repeats, warmup=2, budget=budget)
    tokens = batch * lm["seq"]
    llama = times.get(LLAMA)
    rows = []
    for name, ms in times.items():
        row = {"section": "training", "model": name, "params": sum(p.numel() for p in nets[name].parameters()),
               "batch": batch, "T": lm["seq"], "dtype": "bf16 autocast" if bf16 else "float32",
               "ms": round(ms, 1) if isinstance(ms, float) else ms}
        if isinstance(ms, float):
            row["tokens_per_s"] = round(tokens / ms * 1e3)
            if isinstance(llama, float):
                row["speed_vs_llama"] = round(llama / ms, 3)
        rows.append(row)
        print(f"  {name:20s} {row['params']:>12,} params  {row['ms']} ms/step  {row.get('tokens_per_s', '-')} "
              f"tokens/s  {row.get('speed_vs_llama', '-')}x Llama", flush=True)
    return rows


def output_path(out: Path) -> Path:
    """``--out DIR`` (an existing folder) writes DIR/gpu_check.csv and .json; any other path is the file stem."""
    return out / NAME if out.is_dir() else out


def write(rows: list[dict], out: Path, device: str) -> None:
    stamp = {**environment(device), **versions()}
    rows = [{**r, **stamp} for r in rows]
    fields = list(dict.fromkeys(k for r in rows for k in r))
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.with_suffix(".csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    out.with_suffix(".json").write_text(json.dumps(rows, indent=2))
    print(f"rows: {out.with_suffix('.csv')}, {out.with_suffix('.json')}", flush=True)


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    sections = [x.strip() for x in args.sections.split(",") if x.strip()]
    unknown = sorted(set(sections) - {"equality", "ops", "training"})
    if unknown:
        raise SystemExit(f"--sections: unknown {', '.join(unknown)}; choose from equality, ops, training")
    cuda = torch.cuda.is_available() and not args.smoke
    device = "cuda" if cuda else "cpu"
    backend = "fla" if cuda and fla_ops() is not None else "torch"
    if backend == "fla" and args.autotune == "first":
        from benchmarks.gpu.autotune import single_config
        print(f"fla autotuning off: one launch configuration for each of {single_config()} kernels", flush=True)
    if args.float32_checks_to is not None:
        from benchmarks.gpu.equality import full_precision_fla
        full_precision_fla()
        args.float32_checks_to.write_text(json.dumps(equality_rows(torch.float32, device, backend)))
        return
    start(args)
    budget = Budget(args.budget)
    shape = FULL if cuda else SMOKE
    print(f"device {device} ({versions()['gpu'] or 'cpu'}); op backend under test: {backend}; fla autotune "
          f"{args.autotune}; budget {args.budget} s" + ("" if cuda else "; no CUDA or --smoke: tiny shapes, torch "
                                                        "backend only"), flush=True)
    rows: list[dict] = []
    stamp = {"fla_autotune": args.autotune}
    out = output_path(args.out)
    equality: list[dict] = []
    for section in sections:
        if section == "equality":
            print("\n(c) equality of the backends (relative RMS error)", flush=True)
            equality = (equality_rows(torch.bfloat16, device, backend, show=True)
                        + float32_checks(device, backend, budget, args.autotune))
            rows += [{"section": "equality", **r} for r in equality]
        elif section == "ops":
            rows += op_rows(shape, device, torch.bfloat16 if cuda else torch.float32, backend == "fla",
                            args.repeats, budget)
        else:
            rows += training_rows(shape, device, args.repeats, budget, args.mixers.split(","))
        write([{**r, **stamp} for r in rows], out, device)   # after every section: a cut-short run keeps its rows
    failed = [r for r in equality if not r["ok"]]
    print(f"\nequality checks: {len(equality) - len(failed)} passed, {len(failed)} failed; "
          f"{max(0.0, budget.left()):.0f} s of the budget left")


if __name__ == "__main__":
    main()
