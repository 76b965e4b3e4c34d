"""Liger attention against the computation of the paper's code (``liger/models/liger_gla/modeling_liger_gla.py``:
the gate pooled from the key projection, transformers' ``repeat_kv`` for grouped-query attention, softmax feature
maps, the gated recurrence at scale 1, causal sliding-window attention with transformers' RoPE, mixed 0.5 / 0.5),
written out here token by token as the oracle."""
import pytest
import torch
import torch.nn.functional as F
from transformers import LlamaConfig
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb, repeat_kv

from gatelab.analysis.state import state_bytes
from gatelab.layers.token.liger import NORM_EPS
from gatelab.registry import MIXERS

D_MODEL, H, HKV, D, WINDOW, T = 32, 4, 2, 8, 3, 10


def paper_liger(layer, x: torch.Tensor, mix: float = 0.5) -> torch.Tensor:
    """Liger attention of ``x [B, T, d_model]`` with ``layer``'s q/k/v/o weights, as the paper's code computes it
    (its fused GLA kernel as the recurrence it computes, its flash-attention window as a mask)."""
    B = x.shape[0]
    q = layer.q_proj(x).view(B, T, H, D).transpose(1, 2)                       # (B, H, T, D)
    k = layer.k_proj(x).view(B, T, HKV, D).transpose(1, 2)                     # (B, Hkv, T, D)
    v = layer.v_proj(x).view(B, T, HKV, D).transpose(1, 2)
    g = F.adaptive_avg_pool1d(layer.k_proj(x), HKV * D).view(B, T, HKV, D).transpose(1, 2)
    k, v, g = (repeat_kv(t, H // HKV) for t in (k, v, g))                      # (B, H, T, D)
    qs, ks, g = q.softmax(-1), k.softmax(-1), F.logsigmoid(g) / 16
    S, rec = x.new_zeros(B, H, D, D), []
    for t in range(T):
        S = g[:, :, t].exp().unsqueeze(-1) * S + ks[:, :, t].unsqueeze(-1) * v[:, :, t].unsqueeze(-2)
        rec.append(torch.einsum("bhk,bhkv->bhv", qs[:, :, t], S))
    rec = torch.stack(rec, 2)                                                  # (B, H, T, D)
    config = LlamaConfig(hidden_size=D_MODEL, num_attention_heads=H, num_key_value_heads=HKV, head_dim=D,
                         rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
    cos, sin = LlamaRotaryEmbedding(config)(v, torch.arange(T)[None])
    sq, sk = apply_rotary_pos_emb(q, k, cos.to(x.dtype), sin.to(x.dtype))
    i, j = torch.arange(T)[:, None], torch.arange(T)[None]
    scores = (sq @ sk.transpose(-1, -2) * D**-0.5).masked_fill((j > i) | (i - j >= WINDOW), float("-inf"))
    swa = scores.softmax(-1) @ v                                               # (B, H, T, D)
    o = (mix * swa + (1 - mix) * rec).transpose(1, 2).reshape(B, T, H * D)
    return layer.o_proj(o)


@pytest.mark.parametrize("mix", [0.5, 0.0])
def test_liger_equals_the_paper_code_with_grouped_query_attention(mix):
    layer = MIXERS.get("liger")(D_MODEL, n_heads=H, n_kv_heads=HKV, window=WINDOW, chunk_size=4, mix=mix).double()
    x = torch.randn(2, T, D_MODEL, dtype=torch.float64)
    torch.testing.assert_close(layer(x)[0], paper_liger(layer, x, mix))


@pytest.mark.parametrize("recurrence", ["gla", "linear"])
def test_recurrence_alone_holds_exactly_its_state_size(recurrence):
    layer = MIXERS.get("liger")(D_MODEL, n_heads=H, n_kv_heads=HKV, mix=0.0, recurrence=recurrence).double()
    _, state = layer(torch.randn(1, T, D_MODEL, dtype=torch.float64))
    assert state.kv is None and state_bytes(state) == 8 * layer.state_size(T) == 8 * layer.state_size(10 * T)


def test_ungated_recurrence_is_normalised_linear_attention():
    layer = MIXERS.get("liger")(D_MODEL, n_heads=H, mix=0.0, recurrence="linear").double()
    x = torch.randn(1, T, D_MODEL, dtype=torch.float64)
    q = layer.q_proj(x).view(1, T, H, D).softmax(-1)
    k = layer.k_proj(x).view(1, T, H, D).softmax(-1)
    v = layer.v_proj(x).view(1, T, H, D)
    weights = torch.einsum("bihd,bjhd->bhij", q, k).tril()                    # (1, H, T, T) phi(q_i) . phi(k_j)
    o = torch.einsum("bhij,bjhd->bihd", weights / (weights.sum(-1, keepdim=True) + NORM_EPS), v)
    torch.testing.assert_close(layer(x)[0], layer.o_proj(o.flatten(2)))
