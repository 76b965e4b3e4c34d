"""What ``--set compile=true`` buys: a training step of each registered token mixer's DecoderLM, eager against
torch.compile (inductor), CPU float32, measured in the same run.

    python -m benchmarks.compile [--mixers attn,gla] [--repeats 5] [--out runs/benchmarks/compile] [--smoke]
    (or python benchmarks/compile.py ...; --out benchmarks/results/compile rewrites the committed results)

Each model is the ``ptb-30min`` preset's (d_model 256, 4 layers of mixer + SwiGLU, 4 heads, dropout 0.2, the
channel width matched to attn's parameter count, PTB's 10,000-word vocabulary), trained on batches of 32 x 128
tokens. One training step is forward, loss, backward and an AdamW update, as in the training loop. The eager and
the compiled model start from the same weights and alternate step by step; each reports its median over the repeats
after two warm-up steps (the first compiled step compiles; its time is reported as ``compile_s``). ``speedup`` is
eager time over compiled time (above 1: compiling is faster).
"""
from __future__ import annotations

import sys
from pathlib import Path

if not __package__:   # run as a file (python benchmarks/compile.py): import this checkout's benchmarks and gatelab
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import copy
import time

import torch

from benchmarks.common import benchmark_parser, median_times, start, write_rows
from gatelab.models import DecoderLM, ModelConfig
from gatelab.presets import preset
from gatelab.registry import MIXERS

PTB_VOCAB = 10_000


def ptb_model(mixer: str, smoke: bool) -> tuple[ModelConfig, int, int]:
    """The ``ptb-30min`` model of ``mixer`` (a tiny one under ``--smoke``), its batch size and sequence length."""
    grid = preset("ptb-30min")
    if smoke:
        model = copy.deepcopy(grid.base.model)
        model.mixer, model.vocab_size, model.d_model, model.n_layers, model.n_heads = mixer, 100, 32, 1, 2
        return model, 4, 16
    model = grid.model_for(mixer, grid.d_models[0], PTB_VOCAB)
    model.max_seq_len = grid.seq_lens[0]
    return model, grid.base.batch_size, grid.seq_lens[0]


def train_step(net: torch.nn.Module, params, x: torch.Tensor):
    opt = torch.optim.AdamW(params, lr=1e-4)

    def step() -> None:
        loss = net(x[:, :-1], labels=x[:, 1:]).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def measure(mixer: str, repeats: int, smoke: bool) -> dict:
    cfg, batch, seq = ptb_model(mixer, smoke)
    torch.manual_seed(0)
    eager = DecoderLM(cfg)
    twin = copy.deepcopy(eager)
    x = torch.randint(0, cfg.vocab_size, (batch, seq + 1))
    torch._dynamo.reset()      # each mixer compiles afresh: the earlier mixers' code would count against dynamo's
    compiled = torch.compile(twin, dynamic=False)   # recompile limit, past which it runs eagerly without a word
    steps = {"eager": train_step(eager, eager.parameters(), x), "compiled": train_step(compiled, twin.parameters(), x)}
    t0 = time.perf_counter()
    steps["compiled"]()
    compile_s = time.perf_counter() - t0
    times = median_times(steps, repeats, warmup=1 if smoke else 2)
    return {"mixer": mixer, "params": eager.num_params(), "batch": batch, "seq_len": seq,
            "eager_ms": round(times["eager"] * 1e3, 1), "compiled_ms": round(times["compiled"] * 1e3, 1),
            "speedup": round(times["eager"] / times["compiled"], 3), "compile_s": round(compile_s, 1)}


def mixer_list(text: str) -> list[str]:
    """An argparse type: comma-separated registered mixer keys."""
    keys = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in keys if k not in MIXERS.names()]
    if unknown or not keys:
        raise argparse.ArgumentTypeError(f"unknown mixer(s) {unknown}; choose from {', '.join(MIXERS.names())}")
    return keys


def build_parser() -> argparse.ArgumentParser:
    parser = benchmark_parser("compile", __doc__, repeats=5)
    parser.add_argument("--mixers", type=mixer_list, default=None,
                        help="comma-separated mixer keys (default: every registered mixer; attn under --smoke)")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    start(args)
    mixers = args.mixers or (["attn"] if args.smoke else MIXERS.names())
    rows = []
    for mixer in mixers:
        r = measure(mixer, args.repeats, args.smoke)
        rows.append(r)
        print(f"{mixer:12s} eager {r['eager_ms']:8.1f} ms  compiled {r['compiled_ms']:8.1f} ms  "
              f"{r['speedup']:.2f}x  (compiling took {r['compile_s']:.0f} s)", flush=True)
    slower = [r["mixer"] for r in rows if r["speedup"] <= 1]
    print(f"compiled faster for {len(rows) - len(slower)} of {len(rows)} mixers"
          + (f"; not for {', '.join(slower)}" if slower else ""))
    write_rows(rows, args.out)


if __name__ == "__main__":
    main()
