"""What each channel mixer costs in training: tokens/s and training memory of a DecoderLM with that channel mixer,
beside the same model with SwiGLU, at matched parameters, CPU float32, measured in the same run.

    python -m benchmarks.channels [--channels geglu,moe] [--repeats 5] [--out runs/benchmarks/channels] [--smoke]
    (or python benchmarks/channels.py ...; --out benchmarks/results/channels rewrites the committed results)

Each model: d_model 256, 4 layers of attention (4 heads) + the channel mixer, PTB's 10,000-word vocabulary, trained
on batches of 32 x 128 tokens; its channel width (d_ff) is matched to SwiGLU's model on the parameters one token uses
(all of a dense layer's; a mixture of experts' router, shared and top-k experts), as ``gatelab compare --channels``
matches them. One step is forward, loss, backward and an AdamW update. Each channel mixer alternates step by step
with SwiGLU (both after two warm-up steps); ``speed`` is SwiGLU's median step time over the mixer's (below 1:
slower than SwiGLU). Memory is counted, not sampled: parameters, gradients and AdamW's two moments, plus the
distinct tensors autograd saves for the backward pass (``saved_mb``); ``memory`` is that total over SwiGLU's.
"""
from __future__ import annotations

import sys
from pathlib import Path

if not __package__:   # run as a file (python benchmarks/channels.py): import this checkout's benchmarks and gatelab
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import dataclasses

import torch

from benchmarks.common import benchmark_parser, median_times, start, write_rows
from gatelab.models import DecoderLM, ModelConfig
from gatelab.models.params import count_active_params, match_params
from gatelab.registry import CHANNEL_MIXERS

PTB_VOCAB = 10_000
BASELINE = "swiglu"


def model_for(channel: str, smoke: bool) -> tuple[ModelConfig, int, int]:
    """The benchmark's model with ``channel`` (matched to SwiGLU's active parameters), its batch and length."""
    if smoke:
        base, batch, seq = ModelConfig(vocab_size=100, d_model=32, n_layers=1, n_heads=2, mixer="attn"), 4, 16
    else:
        base, batch, seq = ModelConfig(vocab_size=PTB_VOCAB, d_model=256, n_layers=4, n_heads=4, mixer="attn"), 32, 128
    base.max_seq_len = seq
    reference = count_active_params(base)
    model = dataclasses.replace(base, channel=channel)
    return (model if channel == BASELINE else match_params(model, reference, active=True)), batch, seq


def train_step(model: DecoderLM, x: torch.Tensor):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> None:
        loss = model(x[:, :-1], labels=x[:, 1:]).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def saved_bytes(model: DecoderLM, x: torch.Tensor) -> int:
    """Bytes of the distinct tensors autograd keeps for the backward pass of one training forward (parameters
    saved by a layer are counted with the parameters, not here)."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x[:, :-1], labels=x[:, 1:]).loss.backward()
    model.zero_grad(set_to_none=True)
    return sum(seen.values())


def training_mb(model: DecoderLM, x: torch.Tensor) -> tuple[float, float]:
    """(total, saved) MB: weights, gradients and AdamW's two moments (4 floats per parameter), plus the saved
    tensors."""
    saved = saved_bytes(model, x)
    weights = 4 * sum(p.numel() * p.element_size() for p in model.parameters())
    return (weights + saved) / 2**20, saved / 2**20


def measure(channel: str, repeats: int, smoke: bool) -> dict:
    rows = {}
    for key in (BASELINE, channel):
        cfg, batch, seq = model_for(key, smoke)
        torch.manual_seed(0)
        model = DecoderLM(cfg)
        x = torch.randint(0, cfg.vocab_size, (batch, seq + 1))
        rows[key] = (cfg, model, x)
    times = median_times({k: train_step(m, x) for k, (_, m, x) in rows.items()}, repeats,
                         warmup=1 if smoke else 2)
    cfg, model, x = rows[channel]
    total, saved = training_mb(model, x)
    base_total, _ = training_mb(rows[BASELINE][1], rows[BASELINE][2])
    tokens = x.shape[0] * (x.shape[1] - 1)
    return {"channel": channel, "d_ff": model.blocks[0].channel.d_ff, "params": model.num_params(),
            "active_params": model.num_active_params(), "batch": x.shape[0], "seq_len": x.shape[1] - 1,
            "step_ms": round(times[channel] * 1e3, 1), "swiglu_step_ms": round(times[BASELINE] * 1e3, 1),
            "tokens_per_s": round(tokens / times[channel]), "speed": round(times[BASELINE] / times[channel], 3),
            "train_mb": round(total, 1), "saved_mb": round(saved, 1), "memory": round(total / base_total, 3)}


def channel_list(text: str) -> list[str]:
    """An argparse type: comma-separated registered channel-mixer keys."""
    keys = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in keys if k not in CHANNEL_MIXERS.names()]
    if unknown or not keys:
        raise argparse.ArgumentTypeError(f"unknown channel mixer(s) {unknown}; choose from "
                                         f"{', '.join(CHANNEL_MIXERS.names())}")
    return keys


def build_parser() -> argparse.ArgumentParser:
    parser = benchmark_parser("channels", __doc__, repeats=5)
    parser.add_argument("--channels", type=channel_list, default=None,
                        help="comma-separated channel-mixer keys (default: every registered one; mlp under --smoke)")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    start(args)
    channels = args.channels or (["mlp"] if args.smoke else CHANNEL_MIXERS.names())
    rows = []
    for channel in channels:
        r = measure(channel, args.repeats, args.smoke)
        rows.append(r)
        print(f"{channel:14s} {r['step_ms']:8.1f} ms/step  {r['tokens_per_s']:7d} tokens/s  speed {r['speed']:.2f}x "
              f"swiglu  memory {r['train_mb']:7.1f} MB ({r['memory']:.2f}x)  params {r['params']:,} "
              f"(active {r['active_params']:,})", flush=True)
    write_rows(rows, args.out)


if __name__ == "__main__":
    main()
