"""Decoding cost against context length: time per generated token and state memory, per mixer (CPU float32).

    python -m benchmarks.decode [--mixers attn,gla,gdn,mamba2] [--lengths 128,512,2048,8192] [--out ...]

A 2-layer DecoderLM (d_model 256, 4 heads) prefills a random context of each length, then decodes 16 tokens one
at a time through each mixer's state (KV cache or recurrent state). Reported: the median milliseconds per token,
and the bytes the states hold after the context.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from benchmarks.common import write_rows
from gatelab.analysis.state import state_bytes
from gatelab.models import DecoderLM, ModelConfig


@torch.no_grad()
def measure(mixer: str, length: int, new_tokens: int = 16) -> tuple[float, int]:
    torch.manual_seed(0)
    model = DecoderLM(ModelConfig(vocab_size=512, d_model=256, n_layers=2, n_heads=4, mixer=mixer,
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mixers", default="attn,gla,gdn,mamba2")
    parser.add_argument("--lengths", default="128,512,2048,8192")
    parser.add_argument("--out", default="benchmarks/results/decode")
    args = parser.parse_args()
    rows = []
    for length in [int(x) for x in args.lengths.split(",")]:
        for mixer in args.mixers.split(","):
            ms, nbytes = measure(mixer, length)
            rows.append({"mixer": mixer, "context": length, "ms_per_token": round(ms, 3), "state_bytes": nbytes})
            print(f"{mixer:8s} context {length:5d}: {ms:7.2f} ms/token, state {nbytes / 2**20:8.3f} MiB", flush=True)
    write_rows(rows, Path(args.out))


if __name__ == "__main__":
    main()
