"""Training throughput of gatelab's DecoderLM (softmax attention) against transformers' LlamaForCausalLM of the
same shape, CPU float32, measured in the same run.

    python -m benchmarks.llama [--repeats 7] [--batch 8] [--out runs/benchmarks/llama] [--smoke]
    (or python benchmarks/llama.py ...; --out benchmarks/results/llama rewrites the committed results)

Both models: d_model 256, 6 layers, 4 heads (head dim 64), SwiGLU of the same width, RMSNorm, RoPE, tied
embeddings, vocabulary 10,000 (PTB's), sequences of 256 tokens. One training step is forward, loss, backward
and an AdamW update; the two models alternate step by step and each reports its median over the repeats.
"""
from __future__ import annotations

import sys
from pathlib import Path

if not __package__:   # run as a file (python benchmarks/llama.py): import this checkout's benchmarks and gatelab
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from benchmarks.common import benchmark_parser, median_times, positive_int, start, write_rows
from gatelab.layers.channel.mlp import default_swiglu_width
from gatelab.models import DecoderLM, ModelConfig

# d_model, layers, heads, sequence length, vocabulary
FULL = {"d_model": 256, "layers": 6, "heads": 4, "seq": 256, "vocab": 10_000}
SMOKE = {"d_model": 32, "layers": 1, "heads": 2, "seq": 16, "vocab": 100}


def models(d_model: int, layers: int, heads: int, seq: int, vocab: int) -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    ours = DecoderLM(ModelConfig(vocab_size=vocab, d_model=d_model, n_layers=layers, n_heads=heads, mixer="attn",
                                 channel="swiglu", max_seq_len=seq))
    llama = LlamaForCausalLM(LlamaConfig(
        vocab_size=vocab, hidden_size=d_model, intermediate_size=default_swiglu_width(d_model),
        num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=seq,
        rms_norm_eps=1e-5, tie_word_embeddings=True, attn_implementation="sdpa"))
    return {"gatelab DecoderLM (attn)": ours, "transformers LlamaForCausalLM": llama}


def train_step(model: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor):
    def step() -> None:
        if isinstance(model, DecoderLM):
            loss = model(x[:, :-1], labels=x[:, 1:]).loss
        else:
            loss = model(input_ids=x[:, :-1], labels=x[:, :-1]).loss   # both read seq tokens (it shifts inside)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def build_parser() -> argparse.ArgumentParser:
    parser = benchmark_parser("llama", __doc__, repeats=7)
    parser.add_argument("--batch", type=positive_int, default=8, help="sequences per training step (default 8)")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    start(args)
    shape = SMOKE if args.smoke else FULL
    seq = shape["seq"]
    x = torch.randint(0, shape["vocab"], (args.batch, seq + 1))
    nets = models(**shape)
    steps = {name: train_step(m, torch.optim.AdamW(m.parameters(), lr=1e-4), x) for name, m in nets.items()}
    times = median_times(steps, args.repeats, warmup=1 if args.smoke else 2)
    tokens = args.batch * seq
    baseline = times["transformers LlamaForCausalLM"]
    rows = [{"model": name, "params": sum(p.numel() for p in nets[name].parameters()), "batch": args.batch,
             "seq_len": seq, "ms_per_step": round(t * 1e3, 1), "tokens_per_s": round(tokens / t),
             "speed_vs_llama": round(baseline / t, 3)} for name, t in times.items()]
    for r in rows:
        print(f"{r['model']:32s} {r['params']:>10,} params  {r['ms_per_step']:8.1f} ms/step  "
              f"{r['tokens_per_s']:>8,} tokens/s  {r['speed_vs_llama']:.2f}x")
    write_rows(rows, args.out)


if __name__ == "__main__":
    main()
