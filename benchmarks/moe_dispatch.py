"""The step time (forward + backward) of the ``moe`` channel mixer, 8 experts top-2, against a dense SwiGLU with the
same active parameters, CPU float32, measured in the same run.

    python -m benchmarks.moe_dispatch [--d-model 256] [--batch 32] [--seq-len 128] [--threads N] [--repeats 15]
                                      [--out runs/benchmarks/moe_dispatch] [--smoke]
    (or python benchmarks/moe_dispatch.py ...; --out benchmarks/results/moe_dispatch rewrites the committed results)

Each layer takes a ``[batch, seq_len, d_model]`` input that requires grad (as inside a model) and runs forward, a
loss (the mean square of its output plus, for the mixtures, their auxiliary losses) and backward. ``moe``'s experts
have width ``default_expert_width(d_model, 2)`` (344 at d_model 256) and the dense SwiGLU twice that, so its
parameters equal those of the two experts a token uses (the router's ``d_model * 8`` aside). Also timed: ``moe``
with capacity factor 1.25 (slots beyond capacity dropped) and with a shared expert against a dense SwiGLU of three
experts' width. The layers alternate step by step; each row has its median over the repeats and
``ratio_vs_dense``, its time over the dense SwiGLU's of the same active parameters (the target for plain ``moe``
is at most 1.3).
"""
from __future__ import annotations

import sys
from pathlib import Path

if not __package__:   # run as a file (python benchmarks/moe_dispatch.py): import this checkout's benchmarks and gatelab
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse

import torch

from benchmarks.common import benchmark_parser, median_times, positive_int, start, write_rows
from gatelab.layers.channel import SwiGLU
from gatelab.layers.channel.moe import MoE
from gatelab.layers.channel.moe.moe import default_expert_width

TOP_K, N_EXPERTS = 2, 8


def build_parser() -> argparse.ArgumentParser:
    parser = benchmark_parser("moe_dispatch", __doc__, repeats=15)
    parser.add_argument("--d-model", type=positive_int, default=256, help="model width (default 256)")
    parser.add_argument("--batch", type=positive_int, default=32, help="sequences per step (default 32)")
    parser.add_argument("--seq-len", type=positive_int, default=128, help="tokens per sequence (default 128)")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="torch CPU threads (default: torch's own choice; the rows record the count)")
    return parser


def layers(d_model: int) -> dict[str, tuple[torch.nn.Module, str]]:
    """name -> (layer, the dense baseline of the same active parameters)."""
    torch.manual_seed(0)
    width = default_expert_width(d_model, TOP_K)
    dense, dense_shared = f"swiglu d_ff {TOP_K * width}", f"swiglu d_ff {(TOP_K + 1) * width}"
    return {
        dense: (SwiGLU(d_model, TOP_K * width), dense),
        f"moe {N_EXPERTS}x{width} top-{TOP_K}": (MoE(d_model, n_experts=N_EXPERTS, top_k=TOP_K), dense),
        f"moe {N_EXPERTS}x{width} top-{TOP_K}, capacity 1.25":
            (MoE(d_model, n_experts=N_EXPERTS, top_k=TOP_K, capacity_factor=1.25), dense),
        dense_shared: (SwiGLU(d_model, (TOP_K + 1) * width), dense_shared),
        f"moe {N_EXPERTS}x{width} top-{TOP_K} + shared":
            (MoE(d_model, n_experts=N_EXPERTS, top_k=TOP_K, shared_expert=True), dense_shared),
    }


def train_step(layer: torch.nn.Module, x: torch.Tensor):
    def step() -> None:
        layer.zero_grad(set_to_none=True)
        x.grad = None
        loss = layer(x).square().mean()
        for value in getattr(layer, "aux", {}).values():
            loss = loss + value
        loss.backward()
    return step


def active(layer: torch.nn.Module) -> int:
    return layer.active_params() if isinstance(layer, MoE) else sum(p.numel() for p in layer.parameters())


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    start(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    d, batch, seq = (16, 2, 8) if args.smoke else (args.d_model, args.batch, args.seq_len)
    x = torch.randn(batch, seq, d, requires_grad=True)
    nets = layers(d)
    times = median_times({name: train_step(layer, x) for name, (layer, _) in nets.items()}, args.repeats,
                         warmup=1 if args.smoke else 3)
    rows = []
    for name, (layer, baseline) in nets.items():
        t = times[name]
        rows.append({"layer": name, "d_model": d, "batch": batch, "seq_len": seq,
                     "params": sum(p.numel() for p in layer.parameters()), "active_params": active(layer),
                     "ms_per_step": round(t * 1e3, 2), "tokens_per_s": round(batch * seq / t),
                     "baseline": baseline, "ratio_vs_dense": round(t / times[baseline], 3)})
        print(f"{name:36s} {rows[-1]['active_params']:>9,} active  {rows[-1]['ms_per_step']:8.2f} ms/step  "
              f"{rows[-1]['ratio_vs_dense']:.3f}x {baseline}", flush=True)
    write_rows(rows, args.out)


if __name__ == "__main__":
    main()
