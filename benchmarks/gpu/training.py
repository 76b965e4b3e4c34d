"""One training step (forward, loss, backward, AdamW) of a DecoderLM per mixer and of transformers'
LlamaForCausalLM of the same size, under the same autocast."""
from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from gatelab.layers.channel.mlp import default_swiglu_width
from gatelab.models import DecoderLM, ModelConfig

LLAMA = "transformers Llama"


def build_models(mixers: list[str], d_model: int, layers: int, heads: int, seq: int, vocab: int, device: str
                 ) -> dict[str, torch.nn.Module]:
    """DecoderLMs (SwiGLU, RMSNorm, tied embeddings) with each mixer, and a Llama of the same shape (SDPA)."""
    nets: dict[str, torch.nn.Module] = {}
    for mixer in mixers:
        torch.manual_seed(0)
        nets[mixer] = DecoderLM(ModelConfig(vocab_size=vocab, d_model=d_model, n_layers=layers, n_heads=heads,
                                            mixer=mixer, channel="swiglu", max_seq_len=seq)).to(device)
    torch.manual_seed(0)
    nets[LLAMA] = LlamaForCausalLM(LlamaConfig(
        vocab_size=vocab, hidden_size=d_model, intermediate_size=default_swiglu_width(d_model),
        num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=seq,
        rms_norm_eps=1e-5, tie_word_embeddings=True, attn_implementation="sdpa")).to(device)
    return nets


def train_step(model: torch.nn.Module, x: torch.Tensor, autocast: Callable[[], contextlib.AbstractContextManager]
               ) -> Callable[[], None]:
    """A closure running one step on ``x [B, T + 1]`` under ``autocast()``: both models read T tokens, predict T."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=x.is_cuda)

    def step() -> None:
        with autocast():
            if isinstance(model, DecoderLM):
                loss = model(x[:, :-1], labels=x[:, 1:]).loss
            else:
                loss = model(input_ids=x[:, :-1], labels=x[:, :-1]).loss   # it shifts the labels inside
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step
