"""Training throughput of gatelab's DecoderLM (softmax attention) against transformers' LlamaForCausalLM of the
same shape, CPU float32, measured in the same run; then gla against attn at long sequences.

    python -m benchmarks.llama [--repeats 7] [--batch 32] [--compile] [--gla-lengths 512,1024]
                               [--out runs/benchmarks/llama] [--smoke]
    (or python benchmarks/llama.py ...; --out benchmarks/results/llama rewrites the committed results)

Both models have the ``ptb-30min`` shape: d_model 256, 4 layers, 4 heads (head dim 64), SwiGLU of the same width,
RMSNorm, RoPE, tied embeddings, vocabulary 10,000 (PTB's), batches of 32 x 128 tokens. One training step is
forward, loss, backward and an AdamW update; the models alternate step by step and each reports its median over
the repeats (``speed_vs`` is the baseline's time over the row's). With ``--compile`` both models also run
compiled by torch.compile (inductor), so the table holds gatelab and Llama each eager and compiled, all against
Llama eager. Then, for each of ``--gla-lengths``, gatelab's DecoderLM with gla against the same model with attn
at that sequence length (batch ``4096 / T`` sequences, the same tokens per step), against attn.
"""
from __future__ import annotations

import sys
from pathlib import Path

if not __package__:   # run as a file (python benchmarks/llama.py): import this checkout's benchmarks and gatelab
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import copy

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from benchmarks.common import benchmark_parser, int_list, median_times, positive_int, start, write_rows
from gatelab.layers.channel.mlp import default_swiglu_width
from gatelab.models import DecoderLM, ModelConfig

# d_model, layers, heads, sequence length, vocabulary: the ptb-30min models
FULL = {"d_model": 256, "layers": 4, "heads": 4, "seq": 128, "vocab": 10_000}
SMOKE = {"d_model": 32, "layers": 1, "heads": 2, "seq": 16, "vocab": 100}
LLAMA, OURS = "transformers LlamaForCausalLM", "gatelab DecoderLM (attn)"


def decoder(mixer: str, d_model: int, layers: int, heads: int, seq: int, vocab: int) -> DecoderLM:
    torch.manual_seed(0)
    return DecoderLM(ModelConfig(vocab_size=vocab, d_model=d_model, n_layers=layers, n_heads=heads, mixer=mixer,
                                 channel="swiglu", max_seq_len=seq))


def models(d_model: int, layers: int, heads: int, seq: int, vocab: int) -> dict[str, torch.nn.Module]:
    ours = decoder("attn", d_model, layers, heads, seq, vocab)
    llama = LlamaForCausalLM(LlamaConfig(
        vocab_size=vocab, hidden_size=d_model, intermediate_size=default_swiglu_width(d_model),
        num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=seq,
        rms_norm_eps=1e-5, tie_word_embeddings=True, attn_implementation="sdpa"))
    return {OURS: ours, LLAMA: llama}


def train_step(model: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor):
    ours = isinstance(getattr(model, "_orig_mod", model), DecoderLM)   # a compiled model wraps the module
    # both read seq tokens: ours takes the labels shifted, Llama shifts inside
    inputs = {"input_ids": x[:, :-1], "labels": x[:, 1:] if ours else x[:, :-1]}

    def step() -> None:
        loss = model(**inputs).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def build_parser() -> argparse.ArgumentParser:
    parser = benchmark_parser("llama", __doc__, repeats=7)
    parser.add_argument("--batch", type=positive_int, default=32, help="sequences per training step (default 32)")
    parser.add_argument("--compile", action="store_true",
                        help="also time both models compiled by torch.compile (inductor)")
    parser.add_argument("--gla-lengths", type=int_list, default=[512, 1024],
                        help="sequence lengths at which gla is timed against attn (default 512,1024)")
    return parser


def timed_rows(nets: dict[str, torch.nn.Module], x: torch.Tensor, baseline: str, repeats: int, smoke: bool,
               compiled: set[str] = frozenset()) -> list[dict]:
    """One row per model: its median step time over interleaved repeats, and its speed against ``baseline``."""
    steps = {name: train_step(m, torch.optim.AdamW(m.parameters(), lr=1e-4), x) for name, m in nets.items()}
    times = median_times(steps, repeats, warmup=1 if smoke else 2)
    batch, seq = x.shape[0], x.shape[1] - 1
    rows = [{"model": name, "compiled": name in compiled, "params": sum(p.numel() for p in nets[name].parameters()),
             "batch": batch, "seq_len": seq, "ms_per_step": round(t * 1e3, 1),
             "tokens_per_s": round(batch * seq / t), "baseline": baseline,
             "speed_vs": round(times[baseline] / t, 3)} for name, t in times.items()]
    for r in rows:
        print(f"T={seq:<5d} {r['model']:44s} {r['params']:>10,} params  {r['ms_per_step']:8.1f} ms/step  "
              f"{r['tokens_per_s']:>8,} tokens/s  {r['speed_vs']:.2f}x {baseline}", flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    start(args)
    shape = SMOKE if args.smoke else FULL
    x = torch.randint(0, shape["vocab"], (args.batch, shape["seq"] + 1))
    nets = models(**shape)
    compiled = set()
    if args.compile:
        for name in list(nets):
            twin = copy.deepcopy(nets[name])
            nets[f"{name}, compiled"] = torch.compile(twin, dynamic=False)
            compiled.add(f"{name}, compiled")
    rows = timed_rows(nets, x, LLAMA, args.repeats, args.smoke, compiled)
    tokens = args.batch * shape["seq"]
    for T in ([2 * shape["seq"]] if args.smoke else args.gla_lengths):
        long = {**shape, "seq": T}
        pair = {f"gatelab DecoderLM ({m})": decoder(m, **long) for m in ("attn", "gla")}
        xT = torch.randint(0, shape["vocab"], (max(1, tokens // T), T + 1))
        rows += timed_rows(pair, xT, OURS, args.repeats, args.smoke)
    write_rows(rows, args.out)


if __name__ == "__main__":
    main()
