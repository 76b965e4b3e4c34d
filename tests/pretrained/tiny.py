"""Tiny randomly initialised transformers causal LMs (and a tiny byte-level BPE tokenizer) for the conversion tests.
Weights are drawn with std 0.3 (not transformers' 0.02), so attention is far from uniform and a RoPE, mask or
projection that does not map shows in the logits."""
from __future__ import annotations

from pathlib import Path

import torch

TEXT = ("The capital of France is Paris. It lies on the Seine, and about two million people live there.\n"
        "A quick brown fox jumps over the lazy dog; the dog sleeps on.\n") * 4
VOCAB = 300
END = "<|endoftext|>"


def tiny_config(kind: str = "llama", **overrides):
    """The config of a 2-layer d_model 48 model of ``kind`` (llama, mistral, qwen2, qwen3) with GQA (6 heads, 2 kv
    heads, head_dim 8), vocab 300 and 64 positions."""
    import transformers

    cls = {"llama": "LlamaConfig", "mistral": "MistralConfig", "qwen2": "Qwen2Config", "qwen3": "Qwen3Config"}[kind]
    options = dict(vocab_size=VOCAB, hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=6,
                   num_key_value_heads=2, head_dim=8, max_position_embeddings=64, initializer_range=0.3,
                   rope_parameters={"rope_type": "default", "rope_theta": 5000.0}, tie_word_embeddings=False,
                   bos_token_id=0, eos_token_id=0)
    options.update(overrides)
    return getattr(transformers, cls)(**options)


def tiny_model(kind: str = "llama", seed: int = 0, **overrides):
    """A random tiny causal LM of ``kind`` in eval mode (``tiny_config``'s options, overridden by ``overrides``)."""
    import transformers

    torch.manual_seed(seed)
    config = tiny_config(kind, **overrides)
    cls = {"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM", "qwen2": "Qwen2ForCausalLM",
           "qwen3": "Qwen3ForCausalLM"}[kind]
    return getattr(transformers, cls)(config).eval()


def tiny_tokenizer():
    """A byte-level BPE of 300 ids trained on ``TEXT`` (``<|endoftext|>`` = 0), as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=[END], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(TEXT.splitlines(keepends=True), trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=END, eos_token=END)


def save_tiny(folder: Path, model=None, tokenizer: bool = True) -> Path:
    """``model`` (default: a tiny Llama) and the tiny tokenizer saved to ``folder`` with ``save_pretrained``."""
    from gatelab.hf.run import quiet_transformers

    model = model if model is not None else tiny_model()
    with quiet_transformers():
        model.save_pretrained(folder)
    if tokenizer:
        tiny_tokenizer().save_pretrained(folder)
    return folder
