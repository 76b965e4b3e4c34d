"""Training throughput of gatelab's DecoderLM (softmax attention) against transformers' LlamaForCausalLM of the
same shape, CPU float32, measured in the same run.

    python -m benchmarks.llama [--repeats 7] [--batch 8] [--out benchmarks/results/llama]

Both models: d_model 256, 6 layers, 4 heads (head dim 64), SwiGLU of the same width, RMSNorm, RoPE, tied
embeddings, vocabulary 10,000 (PTB's), sequences of 256 tokens. One training step is forward, loss, backward
and an AdamW update; the two models alternate step by step and each reports its median over the repeats.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from benchmarks.common import median_times, write_rows
from gatelab.layers.channel.mlp import default_swiglu_width
from gatelab.models import DecoderLM, ModelConfig

D_MODEL, LAYERS, HEADS, SEQ, VOCAB = 256, 6, 4, 256, 10_000


def models() -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    ours = DecoderLM(ModelConfig(vocab_size=VOCAB, d_model=D_MODEL, n_layers=LAYERS, n_heads=HEADS, mixer="attn",
                                 channel="swiglu", max_seq_len=SEQ))
    llama = LlamaForCausalLM(LlamaConfig(
        vocab_size=VOCAB, hidden_size=D_MODEL, intermediate_size=default_swiglu_width(D_MODEL),
        num_hidden_layers=LAYERS, num_attention_heads=HEADS, num_key_value_heads=HEADS, max_position_embeddings=SEQ,
        rms_norm_eps=1e-5, tie_word_embeddings=True, attn_implementation="sdpa"))
    return {"gatelab DecoderLM (attn)": ours, "transformers LlamaForCausalLM": llama}


def train_step(model: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor):
    def step() -> None:
        if isinstance(model, DecoderLM):
            loss = model(x[:, :-1], labels=x[:, 1:]).loss
        else:
            loss = model(input_ids=x[:, :-1], labels=x[:, :-1]).loss   # both read SEQ tokens (it shifts inside)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/llama"))
    args = parser.parse_args()
    x = torch.randint(0, VOCAB, (args.batch, SEQ + 1))
    nets = models()
    steps = {name: train_step(m, torch.optim.AdamW(m.parameters(), lr=1e-4), x) for name, m in nets.items()}
    times = median_times(steps, args.repeats, warmup=2)
    tokens = args.batch * SEQ
    baseline = times["transformers LlamaForCausalLM"]
    rows = [{"model": name, "params": sum(p.numel() for p in nets[name].parameters()), "batch": args.batch,
             "seq_len": SEQ, "ms_per_step": round(t * 1e3, 1), "tokens_per_s": round(tokens / t),
             "speed_vs_llama": round(baseline / t, 3)} for name, t in times.items()]
    for r in rows:
        print(f"{r['model']:32s} {r['params']:>10,} params  {r['ms_per_step']:8.1f} ms/step  "
              f"{r['tokens_per_s']:>8,} tokens/s  {r['speed_vs_llama']:.2f}x")
    write_rows(rows, args.out)


if __name__ == "__main__":
    main()
