"""CPU float32 timings of the core ops and attention layers, as ratios measured in the same run.

    python -m benchmarks.ops [--lengths 512,2048,8192] [--repeats 5] [--out runs/benchmarks/ops] [--smoke]
    (or python benchmarks/ops.py ...; --out benchmarks/results/ops rewrites the committed results)

Ops at B=1, H=8, D=64: chunked GLA, the GLA recurrence, causal SDPA (forward, and forward+backward).
Layers at d_model=512, 8 heads of 64: gated_attn (elementwise and headwise G1) against attn.
The later mixers' fast forms (benchmarks/_op_forms.py), forward+backward at --form-lengths beside causal SDPA
and, up to --ref-max-len, beside their own reference form (one repeat: the references are slow by design).
"""
from __future__ import annotations

import sys
from pathlib import Path

if not __package__:   # run as a file (python benchmarks/ops.py): import this checkout's benchmarks and gatelab
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse

import torch
import torch.nn.functional as F

from benchmarks._op_forms import FORMS
from benchmarks.common import benchmark_parser, int_list, median_times, start, write_rows
from gatelab.layers import GatedAttention, SoftmaxAttention
from gatelab.ops import chunk_gla, recurrent_gla, sdpa_attention

B, H, D = 1, 8, 64


def op_inputs(T: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    x = {n: torch.randn(B, T, H, D, generator=gen, requires_grad=True) for n in ("q", "k", "v")}
    x["g"] = (F.logsigmoid(torch.randn(B, T, H, D, generator=gen)) / 16).requires_grad_()
    return x


def op_fns(T: int, backward: bool) -> dict[str, callable]:
    x = op_inputs(T)

    def run(fn):
        def go():
            o, _ = fn()
            if backward:
                o.sum().backward()
        return go if backward else lambda: torch.no_grad()(go)()

    return {
        "gla_chunk": run(lambda: chunk_gla(x["q"], x["k"], x["v"], g=x["g"])),
        "gla_recurrent": run(lambda: recurrent_gla(x["q"], x["k"], x["v"], g=x["g"])),
        "sdpa_causal": run(lambda: sdpa_attention(x["q"], x["k"], x["v"])),
    }


def layer_fns(T: int, backward: bool) -> dict[str, callable]:
    torch.manual_seed(0)
    layers = {
        "attn": SoftmaxAttention(H * D, n_heads=H),
        "gated_attn_elementwise": GatedAttention(H * D, n_heads=H),
        "gated_attn_headwise": GatedAttention(H * D, n_heads=H, gate_granularity="headwise"),
    }
    x = torch.randn(B, T, H * D, requires_grad=backward)

    def run(layer):
        def go():
            y, _ = layer(x)
            if backward:
                y.sum().backward()
        return go if backward else lambda: torch.no_grad()(go)()

    return {name: run(layer) for name, layer in layers.items()}


def form_fns(T: int, with_ref: bool, names: list[str]) -> tuple[dict[str, callable], dict[str, callable]]:
    """Forward+backward of the later ops' fast forms ``names`` and of causal SDPA, and (``with_ref``) of their
    reference forms, at length T."""
    def run(fn, x):
        def go():
            fn(**x).sum().backward()
        return go

    fast, ref = {"sdpa_causal": op_fns(T, backward=True)["sdpa_causal"]}, {}
    for name in names:
        form = FORMS[name]
        x = form.inputs(T)
        fast[f"{name}_fast"] = run(form.fast, x)
        if with_ref:
            ref[f"{name}_ref"] = run(form.ref, x)
    return fast, ref


def time_forms(lengths: list[int], ref_max_len: int, repeats: int, names: list[str]) -> list[dict]:
    rows = []
    for T in lengths:
        fast, ref = form_fns(T, ref_max_len >= T, names)
        times = median_times(fast, repeats)
        times.update(median_times(ref, 1, warmup=0))
        rows += [{"name": name, "T": T, "mode": "fwd+bwd", "seconds": round(t, 5)} for name, t in times.items()]
        for name in names:
            t = times[f"{name}_fast"]
            vs_ref = f"{times[f'{name}_ref'] / t:8.3g}x its reference" if ref else " " * 23
            print(f"T={T:5d} fwd+bwd {name:20s}{vs_ref}  {times['sdpa_causal'] / t:6.2f}x causal SDPA", flush=True)
    return rows


def build_parser() -> argparse.ArgumentParser:
    parser = benchmark_parser("ops", __doc__, repeats=5)
    parser.add_argument("--lengths", type=int_list, default=[512, 2048, 8192],
                        help="comma-separated sequence lengths T (default 512,2048,8192)")
    parser.add_argument("--form-lengths", type=int_list, default=[2048, 8192],
                        help="lengths at which the later mixers' fast forms are timed (default 2048,8192)")
    parser.add_argument("--ref-max-len", type=int, default=2048,
                        help="the longest T at which their reference forms are timed too (default 2048)")
    parser.add_argument("--forms", type=form_names, default=list(FORMS),
                        help=f"comma-separated fast forms to time (default all: {', '.join(FORMS)})")
    return parser


def form_names(text: str) -> list[str]:
    """An argparse type: comma-separated keys of ``FORMS``."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in FORMS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown form {', '.join(unknown) or '(none)'}; choose from "
                                         f"{', '.join(FORMS)}")
    return names


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    start(args)
    lengths = [16] if args.smoke else args.lengths
    rows = []
    for T in lengths:
        for backward in (False, True):
            mode = "fwd+bwd" if backward else "fwd"
            ops = op_fns(T, backward)
            slow = {"gla_recurrent": ops.pop("gla_recurrent")}
            times = median_times(ops, args.repeats)
            times.update(median_times(slow, max(1, min(args.repeats, 2048 * 3 // T)), warmup=0))
            times.update(median_times(layer_fns(T, backward), args.repeats))
            for name, t in times.items():
                rows.append({"name": name, "T": T, "mode": mode, "seconds": round(t, 5)})
            print(f"T={T:5d} {mode:7s} chunk/recurrent {times['gla_recurrent'] / times['gla_chunk']:6.1f}x  "
                  f"chunk vs sdpa {times['sdpa_causal'] / times['gla_chunk']:5.2f}x  "
                  f"gate overhead elementwise {times['gated_attn_elementwise'] / times['attn'] - 1:+.1%} "
                  f"headwise {times['gated_attn_headwise'] / times['attn'] - 1:+.1%}", flush=True)
    rows += time_forms([16] if args.smoke else args.form_lengths, args.ref_max_len, args.repeats, args.forms)
    write_rows(rows, args.out)


if __name__ == "__main__":
    main()
