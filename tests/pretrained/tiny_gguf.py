"""A tiny transformers Llama written as a llama.cpp GGUF (float32 tensors, the tokenizer as ``gpt2`` BPE metadata),
so the GGUF loading path runs in CI without the real SmolLM2. llama.cpp stores q_proj and k_proj rows permuted for
its interleaved rotary pairs; transformers undoes that on load, so the round trip must give the original logits."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def llama_cpp_rows(w: np.ndarray, n_heads: int) -> np.ndarray:
    """The rows of a q or k projection ``[n_heads * D, d_model]`` in llama.cpp's order: within each head, the
    rotate-half pairs (i, i + D/2) become adjacent rows (2i, 2i + 1)."""
    return w.reshape(n_heads, 2, w.shape[0] // n_heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_llama_gguf(model, tokenizer, path: Path) -> Path:
    """``model`` (an untied ``LlamaForCausalLM``) and ``tokenizer`` (a byte-level BPE fast tokenizer whose id 0 is
    BOS and EOS) as the GGUF file ``path``."""
    import gguf

    c, H, Hkv = model.config, model.config.num_attention_heads, model.config.num_key_value_heads
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny")
    w.add_context_length(c.max_position_embeddings)
    w.add_embedding_length(c.hidden_size)
    w.add_block_count(c.num_hidden_layers)
    w.add_feed_forward_length(c.intermediate_size)
    w.add_head_count(H)
    w.add_head_count_kv(Hkv)
    w.add_rope_freq_base(c.rope_parameters["rope_theta"])
    w.add_layer_norm_rms_eps(c.rms_norm_eps)
    w.add_rope_dimension_count(c.head_dim)
    bpe = json.loads(tokenizer.backend_tokenizer.to_str())["model"]
    tokens = [t for t, _ in sorted(bpe["vocab"].items(), key=lambda item: item[1])]
    w.add_tokenizer_model("gpt2")
    w.add_token_list(tokens)
    w.add_token_types([3 if t == tokenizer.bos_token else 1 for t in tokens])   # 3: control, 1: normal
    w.add_token_merges([" ".join(m) if isinstance(m, list) else m for m in bpe["merges"]])
    w.add_bos_token_id(0)
    w.add_eos_token_id(0)
    sd = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    names = {"attn_norm": "input_layernorm", "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj",
             "ffn_norm": "post_attention_layernorm", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
             "ffn_down": "mlp.down_proj"}
    w.add_tensor("token_embd.weight", sd["model.embed_tokens.weight"])
    for i in range(c.num_hidden_layers):
        ours = f"model.layers.{i}."
        w.add_tensor(f"blk.{i}.attn_q.weight", llama_cpp_rows(sd[ours + "self_attn.q_proj.weight"], H))
        w.add_tensor(f"blk.{i}.attn_k.weight", llama_cpp_rows(sd[ours + "self_attn.k_proj.weight"], Hkv))
        for theirs, name in names.items():
            w.add_tensor(f"blk.{i}.{theirs}.weight", sd[f"{ours}{name}.weight"])
    w.add_tensor("output_norm.weight", sd["model.norm.weight"])
    w.add_tensor("output.weight", sd["lm_head.weight"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
