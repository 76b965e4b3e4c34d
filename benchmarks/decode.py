"""Decoding cost against context length: time per generated token and state memory, per mixer (CPU float32).

    python -m benchmarks.decode [--mixers attn,gla,gdn,mamba2] [--lengths 128,512,2048,8192] [--repeats 32]
                                [--out runs/benchmarks/decode] [--smoke]
    (or python benchmarks/decode.py ...; --out benchmarks/results/decode rewrites the committed results)

A 2-layer DecoderLM (d_model 256, 4 heads) per mixer prefills a random context of every length, then decodes
``--repeats`` tokens one at a time through each context's state (KV cache or recurrent state), the contexts taking
turns token by token so that the machine's drift hits every length alike. Reported per mixer and context: the
median milliseconds per token, its ratio to the shortest context's (``vs_shortest``), the bytes the states hold
after decoding (allocated: a KV cache grows by doubling) and the floats per sequence of ``state_size``.
"""
from __future__ import annotations

import sys
from pathlib import Path

if not __package__:   # run as a file (python benchmarks/decode.py): import this checkout's benchmarks and gatelab
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import functools

import torch

from benchmarks.common import benchmark_parser, int_list, median_times, start, write_rows
from gatelab.analysis.state import state_bytes
from gatelab.models import DecoderLM, ModelConfig


@torch.no_grad()
def measure(mixer: str, lengths: list[int], new_tokens: int, d_model: int = 256) -> list[dict]:
    """One row per context length: median ms per decoded token (interleaved over the lengths) and state sizes."""
    torch.manual_seed(0)
    model = DecoderLM(ModelConfig(vocab_size=512, d_model=d_model, n_layers=2, n_heads=4, mixer=mixer,
                                  max_seq_len=max(lengths) + new_tokens + 1)).eval()
    lines = {}
    for length in lengths:
        out = model(torch.randint(0, 512, (1, length)))
        lines[length] = (out.states, out.logits[:, -1:].argmax(-1))

    def step(length: int) -> None:
        states, token = lines[length]
        out = model(token, states=states, step=True)
        lines[length] = (out.states, out.logits[:, -1:].argmax(-1))

    times = median_times({str(n): functools.partial(step, n) for n in lengths}, new_tokens)
    shortest = times[str(lengths[0])]
    return [{"mixer": mixer, "context": n, "ms_per_token": round(times[str(n)] * 1e3, 3),
             "vs_shortest": round(times[str(n)] / shortest, 3), "state_bytes": state_bytes(lines[n][0]),
             "state_floats": model.state_size(n)} for n in lengths]


def build_parser() -> argparse.ArgumentParser:
    parser = benchmark_parser("decode", __doc__, repeats=32)
    parser.add_argument("--mixers", default="attn,gla,gdn,mamba2",
                        help="comma-separated mixer keys (gatelab mixers lists them; default attn,gla,gdn,mamba2)")
    parser.add_argument("--lengths", type=int_list, default=[128, 512, 2048, 8192],
                        help="comma-separated context lengths (default 128,512,2048,8192)")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    start(args)
    lengths, d_model = ([8], 32) if args.smoke else (args.lengths, 256)
    rows = []
    for mixer in args.mixers.split(","):
        for row in measure(mixer, lengths, new_tokens=args.repeats, d_model=d_model):
            rows.append(row)
            print(f"{mixer:8s} context {row['context']:5d}: {row['ms_per_token']:7.2f} ms/token "
                  f"({row['vs_shortest']:.2f}x context {lengths[0]}), state {row['state_bytes'] / 2**20:8.3f} MiB",
                  flush=True)
    write_rows(rows, args.out)


if __name__ == "__main__":
    main()
