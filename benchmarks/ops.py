"""CPU float32 timings of the core ops and attention layers, as ratios measured in the same run.

    python -m benchmarks.ops [--lengths 512,2048,8192] [--repeats 5] [--out runs/benchmarks/ops] [--smoke]
    (or python benchmarks/ops.py ...; --out benchmarks/results/ops rewrites the committed results)

Ops at B=1, H=8, D=64: chunked GLA, the GLA recurrence, causal SDPA (forward, and forward+backward).
Layers at d_model=512, 8 heads of 64: gated_attn (elementwise and headwise G1) against attn.
"""
from __future__ import annotations

import sys
from pathlib import Path

if not __package__:   # run as a file (python benchmarks/ops.py): import this checkout's benchmarks and gatelab
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse

import torch
import torch.nn.functional as F

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


def build_parser() -> argparse.ArgumentParser:
    parser = benchmark_parser("ops", __doc__, repeats=5)
    parser.add_argument("--lengths", type=int_list, default=[512, 2048, 8192],
                        help="comma-separated sequence lengths T (default 512,2048,8192)")
    return parser


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
    write_rows(rows, args.out)


if __name__ == "__main__":
    main()
