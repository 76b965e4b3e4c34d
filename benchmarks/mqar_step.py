"""A training step of gla against attn at MQAR scale: the models of the ``default`` compare preset (2 layers of
mixer behind a short convolution, one head, no channel mixer, vocabulary 512, batch 64), CPU float32, measured
in the same run.

    python -m benchmarks.mqar_step [--d-models 32,64,128] [--lengths 64,128,256] [--repeats 9]
                                   [--out runs/benchmarks/mqar_step] [--smoke]
    (or python benchmarks/mqar_step.py ...; --out benchmarks/results/mqar_step rewrites the committed results)

gla's heads there are small (key dim d_model / 2, value dim d_model: 16 to 64 and 32 to 128), where per-op
overhead, not arithmetic, sets the step time. For each width and length the two models alternate step by step
(forward, loss, backward, AdamW); ``speed_vs`` is attn's median time over gla's (below 1: gla is slower).
"""
from __future__ import annotations

import sys
from pathlib import Path

if not __package__:   # run as a file (python benchmarks/mqar_step.py): import this checkout's benchmarks and gatelab
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import copy

import torch

from benchmarks.common import benchmark_parser, int_list, start, write_rows
from benchmarks.llama import timed_rows
from gatelab.models import DecoderLM
from gatelab.presets import preset


def mqar_model(mixer: str, d_model: int, seq: int) -> DecoderLM:
    grid = preset("default")
    cfg = copy.deepcopy(grid.base.model)
    cfg.mixer, cfg.d_model, cfg.vocab_size, cfg.max_seq_len = mixer, d_model, grid.base.mqar.vocab_size, seq
    torch.manual_seed(0)
    return DecoderLM(cfg)


def build_parser() -> argparse.ArgumentParser:
    parser = benchmark_parser("mqar_step", __doc__, repeats=9)
    parser.add_argument("--d-models", type=int_list, default=[32, 64, 128], help="model widths (default 32,64,128)")
    parser.add_argument("--lengths", type=int_list, default=[64, 128, 256],
                        help="sequence lengths (default 64,128,256)")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    start(args)
    widths, lengths = ([16], [16]) if args.smoke else (args.d_models, args.lengths)
    batch = 4 if args.smoke else preset("default").base.batch_size
    rows = []
    for d in widths:
        for T in lengths:
            pair = {f"{m} d_model {d}": mqar_model(m, d, T) for m in ("attn", "gla")}
            x = torch.randint(0, 512, (batch, T + 1))
            rows += [{"d_model": d, **r} for r in timed_rows(pair, x, f"attn d_model {d}", args.repeats, args.smoke)]
    write_rows(rows, args.out)


if __name__ == "__main__":
    main()
