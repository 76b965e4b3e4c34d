"""What one token-mixer layer costs at the Long Range Arena's lengths: forward+backward time and peak memory of
attn, gla, gdn, mamba2 and probsparse at T = 1024, 2048, 4096, causal and bidirectional, as ratios against attn
measured in the same run (CPU float32).

    python -m benchmarks.lra_lengths [--lengths 1024,2048,4096] [--mixers gla,gdn] [--repeats 9]
                                     [--out runs/benchmarks/lra_lengths] [--smoke]
    (or python benchmarks/lra_lengths.py ...; --out benchmarks/results/lra_lengths rewrites the committed results)

One layer at d_model 64 with 4 heads (each mixer's other options at their defaults: mamba2 at expand 2 has 4
heads of 32 channels, d_state 16), batch 4, float32, the CPU threads torch is given (the row's ``device`` says how
many). ``causal`` is the mixer as registered; ``bidirectional`` is
``bidirectional_mixer(key, 64, {"n_heads": 4}, "shared", "mean")``: attn and probsparse without their causal mask
(probsparse then picks Informer's top-u queries of the whole sequence), gla, gdn and mamba2 as a forward and a
reverse scan sharing their parameters, averaged. One step is the layer's forward on ``x [4, T, 64]``,
``y.sum()``, and the backward pass to the input and the parameters (their gradients set to None before, so every
step allocates them). Per length and form, the mixers alternate step by step after one warm-up step; ``seconds``
is each mixer's median, ``time_vs_attn`` that over attn's median in the same rounds (above 1: slower than attn).

Peak memory is counted, not sampled: PyTorch's profiler records every allocation and free of its CPU allocator
(tensors, and the workspaces kernels allocate through it, e.g. the blocks of the CPU flash-attention kernel that
SDPA runs) with the total held after each; ``peak_mb`` is the largest total during one step, counted from the
step's start, so the input and the parameters (held before) are out and their gradients in. It is what the step
really allocates: CPU SDPA never forms the T x T score matrix, so attention's peak grows linearly in T here, not
as the textbook's O(T^2). It leaves out the small buffers BLAS libraries allocate themselves, and unlike the
process's RSS it does not depend on the glibc heap (a warm process reuses freed blocks and grows by less, a cold
one also pages in code). With glibc made to return every block above 64 KiB (``MALLOC_MMAP_THRESHOLD_=65536
MALLOC_TRIM_THRESHOLD_=0``), the peak RSS growth of a warm step agreed with ``peak_mb`` within 3% in the eight
cells checked (every mixer; both forms of attn and probsparse; T=4096, and attn at 1024). ``peak_vs_attn`` is
that peak over attn's.
"""
from __future__ import annotations

import sys
from pathlib import Path

if not __package__:   # run as a file (python benchmarks/lra_lengths.py): import this checkout's benchmarks, gatelab
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
from collections.abc import Callable

import torch
from torch._C._profiler import _EventType
from torch.profiler import ProfilerActivity, profile

from benchmarks.common import benchmark_parser, int_list, median_times, start, write_rows
from gatelab.layers.base import TokenMixer
from gatelab.layers.token import bidirectional_mixer
from gatelab.registry import MIXERS

BASELINE = "attn"
MIXER_KEYS = ["gla", "gdn", "mamba2", "probsparse"]
FORMS = ("causal", "bidirectional")
D_MODEL, N_HEADS, BATCH = 64, 4, 4


def build(key: str, form: str) -> TokenMixer:
    """Mixer ``key`` at the benchmark's width, causal as registered or in its bidirectional form."""
    torch.manual_seed(0)
    options = {"n_heads": N_HEADS}
    if form == "causal":
        return MIXERS.get(key)(D_MODEL, **options)
    return bidirectional_mixer(key, D_MODEL, options, "shared", "mean")


def train_step(layer: TokenMixer, x: torch.Tensor) -> Callable[[], None]:
    """One forward and backward pass of ``layer`` over ``x``, its gradients allocated afresh."""
    def step() -> None:
        layer.zero_grad(set_to_none=True)
        x.grad = None
        y, _ = layer(x)
        y.sum().backward()
    return step


def allocations(fn: Callable[[], None]) -> list[tuple[int, int]]:
    """(time in ns, total bytes held) after each CPU allocation and free made while ``fn`` runs, counted from its
    start, in time order."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events, stack = [], list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        event = stack.pop()
        if event.typed[0] == _EventType.Allocation and event.typed[1].device.type == "cpu":
            events.append((event.start_time_ns, event.typed[1].alloc_size, event.typed[1].total_allocated))
        stack.extend(event.children)
    if not events:
        return []
    events.sort()
    before = events[0][2] - events[0][1]   # the profiler's running total outlives a session: count from fn's start
    return [(time, total - before) for time, _, total in events]


def peak_bytes(fn: Callable[[], None]) -> int:
    """The most bytes the CPU allocator held at once while ``fn`` ran, above what it held when ``fn`` started (frees
    of blocks allocated before are not seen: free them before)."""
    return max([0] + [total for _, total in allocations(fn)])


def measure(keys: list[str], form: str, T: int, batch: int, repeats: int) -> list[dict]:
    """Rows for attn and ``keys`` in ``form`` at length T: median step time and memory, each against attn's."""
    layers = {key: build(key, form) for key in [BASELINE, *keys]}
    x = torch.randn(batch, T, D_MODEL, generator=torch.Generator().manual_seed(0), requires_grad=True)
    steps = {key: train_step(layer, x) for key, layer in layers.items()}
    times = median_times(steps, repeats)
    peak = {}
    for key, layer in layers.items():
        layer.zero_grad(set_to_none=True)
        x.grad = None
        peak[key] = peak_bytes(steps[key])
    rows = []
    for key, layer in layers.items():
        rows.append({"form": form, "T": T, "mixer": key, "batch": batch, "d_model": D_MODEL,
                     "params": sum(p.numel() for p in layer.parameters()),
                     "seconds": round(times[key], 5), "time_vs_attn": round(times[key] / times[BASELINE], 3),
                     "peak_mb": round(peak[key] / 2**20, 2), "peak_vs_attn": round(peak[key] / peak[BASELINE], 3)})
    return rows


def mixer_list(text: str) -> list[str]:
    """An argparse type: comma-separated registered token-mixer keys (attn, the baseline, is always measured)."""
    keys = [k.strip() for k in text.split(",") if k.strip() and k.strip() != BASELINE]
    unknown = [k for k in keys if k not in MIXERS.names()]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown token mixer(s) {unknown}; choose from {', '.join(MIXERS.names())}")
    return keys


def build_parser() -> argparse.ArgumentParser:
    parser = benchmark_parser("lra_lengths", __doc__, repeats=9)
    parser.add_argument("--lengths", type=int_list, default=[1024, 2048, 4096],
                        help="comma-separated sequence lengths T (default 1024,2048,4096; 32 under --smoke)")
    parser.add_argument("--mixers", type=mixer_list, default=MIXER_KEYS,
                        help=f"comma-separated token-mixer keys measured against {BASELINE}, which is always "
                             f"measured (default {','.join(MIXER_KEYS)})")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    start(args)
    lengths, batch = ([32], 2) if args.smoke else (args.lengths, BATCH)
    rows = []
    for T in lengths:
        for form in FORMS:
            cell = measure(args.mixers, form, T, batch, args.repeats)
            rows += cell
            print(f"T={T:5d} {form:13s} " + "  ".join(
                f"{r['mixer']} {r['seconds'] * 1e3:.0f} ms ({r['time_vs_attn']:.2f}x), {r['peak_mb']:.0f} MB "
                f"({r['peak_vs_attn']:.2f}x)" for r in cell), flush=True)
    write_rows(rows, args.out)


if __name__ == "__main__":
    main()
