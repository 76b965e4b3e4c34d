"""CPU float32 timings of the recurrent ops, as ratios measured in the same run.

    python -m benchmarks.recurrent_ops [--repeats 5] [--out runs/benchmarks/recurrent_ops] [--only-transformers]
    (or python benchmarks/recurrent_ops.py ...; --out benchmarks/results/recurrent_ops rewrites the committed results)

1. Chunked gated delta rule against transformers' pure-torch ``torch_chunk_gated_delta_rule`` (Qwen3-Next) at
   B=8, T=512, H=4, K=V=64, forward+backward, each with chunks of 64 (both defaults) and of 32.
2. Every chunked op against its own recurrence at T=2048 and against causal SDPA at T=8192 (B=1, H=8, D=64;
   the selective scan with E = H * D = 512 channels and N = 16), forward+backward.
"""
from __future__ import annotations

import sys
from pathlib import Path

if not __package__:   # run as a file (python benchmarks/recurrent_ops.py): import this checkout's code
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse

import torch
import torch.nn.functional as F

from benchmarks.common import benchmark_parser, median_times, start, transformers_torch_function, write_rows
from gatelab.ops import (
    chunk_gated_delta_rule,
    chunk_gla,
    chunk_selective_scan,
    chunk_simple_gla,
    recurrent_gated_delta_rule,
    recurrent_gla,
    recurrent_selective_scan,
    recurrent_simple_gla,
    sdpa_attention,
)


def leaves(*tensors: torch.Tensor) -> list[torch.Tensor]:
    return [t.detach().requires_grad_() for t in tensors]


def fwd_bwd(fn, inputs: list[torch.Tensor], **kw):
    def go():
        o, _ = fn(*inputs, **kw)
        o.sum().backward()
    return go


def op_cases(B: int, T: int, H: int, D: int) -> dict[str, tuple]:
    """name -> (chunked fn, reference fn, inputs, keyword inputs)."""
    gen = torch.Generator().manual_seed(0)

    def r(*shape):
        return torch.randn(*shape, generator=gen)

    q, k, v = r(B, T, H, D), F.normalize(r(B, T, H, D), dim=-1), r(B, T, H, D)
    g_ch, g_h, beta = F.logsigmoid(r(B, T, H, D)) / 16, F.logsigmoid(r(B, T, H)), torch.rand(B, T, H, generator=gen)
    E, N = H * D, 16
    x, dt = r(B, T, E), F.softplus(r(B, T, E)) / 10
    A, Bm, Cm = -torch.rand(E, N, generator=gen) - 0.1, r(B, T, N), r(B, T, N)
    return {
        "gla": (chunk_gla, recurrent_gla, leaves(q, k, v), {"g": leaves(g_ch)[0]}),
        "simple_gla": (chunk_simple_gla, recurrent_simple_gla, leaves(q, k, v), {"g": leaves(g_h)[0]}),
        "gated_delta_rule": (chunk_gated_delta_rule, recurrent_gated_delta_rule, leaves(q, k, v),
                             {"g": leaves(g_h)[0], "beta": leaves(beta)[0]}),
        "selective_scan": (chunk_selective_scan, recurrent_selective_scan, leaves(x, dt, A, Bm, Cm),
                           {"chunk_size": 16}),  # the mamba layer's default
    }


# (B, T, H, D) of the comparison with transformers; (T, versus) and (H, D) of the op-against-op part.
FULL = {"gdn": (8, 512, 4, 64), "lengths": ((2048, "recurrence"), (8192, "sdpa")), "heads": (8, 64)}
SMOKE = {"gdn": (1, 32, 2, 16), "lengths": ((32, "recurrence"), (64, "sdpa")), "heads": (2, 16)}


def build_parser() -> argparse.ArgumentParser:
    parser = benchmark_parser("recurrent_ops", __doc__, repeats=5)
    parser.add_argument("--only-transformers", action="store_true",
                        help="only the comparison with transformers' gated delta rule (part 1)")
    return parser


def versus_transformers(B: int, T: int, H: int, D: int, repeats: int) -> list[dict]:
    """Part 1: chunk_gated_delta_rule against transformers' pure-torch one, forward+backward, chunks of 64 and 32."""
    theirs = transformers_torch_function("transformers.models.qwen3_next.modeling_qwen3_next",
                                         "torch_chunk_gated_delta_rule")
    if theirs is None:
        return []
    gen = torch.Generator().manual_seed(0)
    q, k = (F.normalize(torch.randn(B, T, H, D, generator=gen), dim=-1) for _ in range(2))
    v, g = torch.randn(B, T, H, D, generator=gen), F.logsigmoid(torch.randn(B, T, H, generator=gen))
    beta = torch.rand(B, T, H, generator=gen)
    ins = leaves(q, k, v, g, beta)
    impls = {"gatelab chunk_gated_delta_rule": chunk_gated_delta_rule,
             "transformers torch_chunk_gated_delta_rule": theirs}
    fns = {(name, C): fwd_bwd(lambda q, k, v, g, b, fn=fn, C=C: fn(q, k, v, g=g, beta=b, chunk_size=C), ins)
           for name, fn in impls.items() for C in (64, 32)}
    times = median_times(fns, repeats)
    baseline = times[("transformers torch_chunk_gated_delta_rule", 64)]  # its default chunk size
    rows = []
    for (name, C), t in times.items():
        rows.append({"bench": "gdn_vs_transformers", "name": name, "chunk_size": C, "T": T, "mode": "fwd+bwd",
                     "seconds": round(t, 5)})
        print(f"gated delta rule B={B} T={T} H={H} K=V={D} fwd+bwd, {name} chunk {C}: {t * 1e3:.1f} ms, "
              f"{baseline / t:.2f}x transformers at its default chunk 64", flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    start(args)
    shapes = SMOKE if args.smoke else FULL
    rows = versus_transformers(*shapes["gdn"], args.repeats)
    if args.only_transformers:
        if rows:
            write_rows(rows, args.out)
        return

    H, D = shapes["heads"]
    for T, versus in shapes["lengths"]:
        cases = op_cases(1, T, H, D)
        q, k, v = leaves(*(torch.randn(1, T, H, D) for _ in range(3)))
        fns = {f"{name} chunk": fwd_bwd(chunk, ins, **kw) for name, (chunk, _, ins, kw) in cases.items()}
        if versus == "sdpa":
            fns["sdpa causal"] = fwd_bwd(sdpa_attention, [q, k, v])
        times = median_times(fns, args.repeats if versus == "recurrence" else max(1, args.repeats // 2))
        if versus == "recurrence":
            times.update(median_times({f"{name} recurrent": fwd_bwd(ref, ins, **kw)
                                       for name, (_, ref, ins, kw) in cases.items()}, 1, warmup=0))
        for name, t in times.items():
            rows.append({"bench": f"vs_{versus}", "name": name, "T": T, "mode": "fwd+bwd", "seconds": round(t, 5)})
        for name in cases:
            other = times[f"{name} recurrent"] if versus == "recurrence" else times["sdpa causal"]
            print(f"T={T} {name:17s} chunk {times[f'{name} chunk'] * 1e3:8.1f} ms   vs {versus}: "
                  f"{other / times[f'{name} chunk']:6.1f}x", flush=True)
    write_rows(rows, args.out)


if __name__ == "__main__":
    main()
