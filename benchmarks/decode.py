"""Decoding cost against context length: time per generated token and state memory, per mixer (CPU float32).

    python -m benchmarks.decode [--mixers attn,gla,gdn,mamba2] [--lengths 128,512,2048,8192]
                                [--out runs/benchmarks/decode] [--smoke]
    (or python benchmarks/decode.py ...; --out benchmarks/results/decode rewrites the committed results)

A 2-layer DecoderLM (d_model 256, 4 heads) prefills a random context of each length, then decodes 16 tokens one
at a time through each mixer's state (KV cache or recurrent state). Reported: the median milliseconds per token,
and the bytes the states hold after the context.
"""
from __future__ import annotations

import sys
from pathlib import Path

if not __package__:   # run as a file (python benchmarks/decode.py): import this checkout's benchmarks and gatelab
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import statistics
import time

import torch

from benchmarks.common import benchmark_parser, int_list, start, write_rows
from gatelab.analysis.state import state_bytes
from gatelab.models import DecoderLM, ModelConfig


@torch.no_grad()
def measure(mixer: str, length: int, new_tokens: int = 16, d_model: int = 256) -> tuple[float, int]:
    torch.manual_seed(0)
    model = DecoderLM(ModelConfig(vocab_size=512, d_model=d_model, n_layers=2, n_heads=4, mixer=mixer,
                                  max_seq_len=length + new_tokens)).eval()
    out = model(torch.randint(0, 512, (1, length)))
    states, token = out.states, out.logits[:, -1:].argmax(-1)
    times = []
    for _ in range(new_tokens):
        t0 = time.perf_counter()
        out = model(token, states=states, step=True)
        times.append(time.perf_counter() - t0)
        states, token = out.states, out.logits[:, -1:].argmax(-1)
    return statistics.median(times) * 1e3, state_bytes(states)


def build_parser() -> argparse.ArgumentParser:
    parser = benchmark_parser("decode", __doc__, repeats=16)
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
    for length in lengths:
        for mixer in args.mixers.split(","):
            ms, nbytes = measure(mixer, length, new_tokens=args.repeats, d_model=d_model)
            rows.append({"mixer": mixer, "context": length, "ms_per_token": round(ms, 3), "state_bytes": nbytes})
            print(f"{mixer:8s} context {length:5d}: {ms:7.2f} ms/token, state {nbytes / 2**20:8.3f} MiB", flush=True)
    write_rows(rows, args.out)


if __name__ == "__main__":
    main()
