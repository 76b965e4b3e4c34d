"""``to_gatelab``: tiny random Llama, Mistral, Qwen2 and Qwen3 models become gatelab DecoderLMs with the same
logits (float32 tolerance; 1e-10 in float64 against a float64-exact reference), the same greedy decoding, and clear
errors for what does not map."""
import pytest
import torch
from torch import nn

from gatelab.config import ConfigError
from gatelab.pretrained import SUPPORTED, logits_gap, to_gatelab
from tests.pretrained.tiny import VOCAB, tiny_model

ROPES = {
    "default": {"rope_type": "default", "rope_theta": 5000.0},
    "linear": {"rope_type": "linear", "rope_theta": 5000.0, "factor": 2.0},
    "llama3": {"rope_type": "llama3", "rope_theta": 5000.0, "factor": 8.0, "low_freq_factor": 1.0,
               "high_freq_factor": 4.0, "original_max_position_embeddings": 16},
    "yarn": {"rope_type": "yarn", "rope_theta": 5000.0, "factor": 4.0, "original_max_position_embeddings": 16},
    "yarn-mscale": {"rope_type": "yarn", "rope_theta": 5000.0, "factor": 4.0, "mscale": 0.7, "mscale_all_dim": 0.3,
                    "original_max_position_embeddings": 16, "beta_fast": 16.0, "beta_slow": 2.0},
}


def ids(T=40, B=2):
    return torch.randint(0, VOCAB, (B, T))


def assert_same_logits(model, lm, x, rtol=1e-5):
    gap, relative = logits_gap(model, lm, x)
    assert relative < rtol, (gap, relative)
    return gap


@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("rope", list(ROPES))
def test_llama_logits_equal(tied, rope):
    model = tiny_model(tie_word_embeddings=tied, rope_parameters=dict(ROPES[rope]))
    lm = to_gatelab(model)
    assert (lm.head.weight is lm.embed.weight) == tied and lm.config.tie_embeddings == tied
    attn = lm.blocks[0].mixer.config
    assert (attn.n_heads, attn.n_kv_heads, attn.head_dim, attn.rope_base) == (6, 2, 8, 5000.0)
    assert (attn.rope_scaling is None) == (rope == "default")
    assert lm.config.d_ff == 96 and lm.config.max_seq_len == 64 and lm.config.channel == "swiglu"
    assert_same_logits(model, lm, ids())


def test_a_wrong_rope_would_be_seen():
    """The comparison can fail: the converted model with another RoPE base, or without its llama3 scaling, gives
    logits far from the original's."""
    model = tiny_model(rope_parameters=dict(ROPES["llama3"]))
    lm, x = to_gatelab(model), ids()
    assert_same_logits(model, lm, x)
    for block in lm.blocks:
        block.mixer.rope.scaling = None
    assert logits_gap(model, lm, x)[1] > 1e-2


class ExactRMSNorm(nn.Module):
    """transformers' Llama RMSNorm formula, ``w * x / sqrt(mean(x^2) + eps)``, in the input's dtype (theirs rounds
    to float32 first)."""

    def __init__(self, norm):
        super().__init__()
        self.weight, self.eps = norm.weight, norm.variance_epsilon

    def forward(self, x):
        return self.weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)


class ExactRotary(nn.Module):
    """transformers' default RoPE cos/sin (``rotate_half`` layout), computed in float64 (theirs: float32)."""

    def __init__(self, head_dim, base):
        super().__init__()
        self.inv_freq = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)

    def forward(self, x, position_ids):
        angles = position_ids[..., None].double() * self.inv_freq                         # (B, T, D/2)
        emb = torch.cat([angles, angles], dim=-1)                                          # (B, T, D)
        return emb.cos(), emb.sin()


@pytest.mark.parametrize("tied", [False, True])
def test_float64_logits_equal_to_1e_10(tied):
    """In float64 against transformers' own modules where they compute in float64 (SDPA attention, projections,
    MLP, residuals), with the two steps that round to float32 whatever the dtype (RMSNorm, RoPE angles) replaced by
    the same formulas in float64."""
    model = tiny_model(tie_word_embeddings=tied, attn_implementation="sdpa").double()
    lm = to_gatelab(model)
    assert next(lm.parameters()).dtype == torch.float64
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if type(child).__name__ == "LlamaRMSNorm":
                setattr(module, name, ExactRMSNorm(child))
    model.model.rotary_emb = ExactRotary(8, 5000.0)
    x = ids()
    torch.testing.assert_close(lm(x).logits, model(x).logits, atol=1e-10, rtol=1e-10)


ARCHITECTURES = {
    "mistral-window": ("mistral", dict(sliding_window=8)),
    "mistral": ("mistral", dict(sliding_window=None)),
    "qwen2-window": ("qwen2", dict(num_hidden_layers=4, use_sliding_window=True, sliding_window=8,
                                   max_window_layers=2)),
    "qwen3": ("qwen3", dict()),
    "qwen3-window-bias": ("qwen3", dict(num_hidden_layers=3, use_sliding_window=True, sliding_window=8,
                                        max_window_layers=1, attention_bias=True)),
}


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_llama_family_logits_equal(name):
    kind, options = ARCHITECTURES[name]
    model = tiny_model(kind, **options)
    lm = to_gatelab(model)
    windowed = [b.mixer.window for b in lm.blocks]
    layer_types = getattr(model.config, "layer_types", None)
    expected = [8 if (name == "mistral-window" or (layer_types and t == "sliding_attention")) else None
                for t in (layer_types or [None] * len(lm.blocks))]
    assert windowed == expected
    bias = lm.blocks[0].mixer.config.bias
    assert bias == {"qwen2": "qkv", "qwen3": "all" if options.get("attention_bias") else "none"}.get(kind, "none")
    assert lm.blocks[0].mixer.config.qk_norm == (kind == "qwen3")
    assert_same_logits(model, lm, ids())


def test_a_dropped_window_would_be_seen():
    model = tiny_model("mistral", sliding_window=8)
    lm, x = to_gatelab(model), ids()
    for block in lm.blocks:
        block.mixer.window = None
    assert logits_gap(model, lm, x)[1] > 1e-2


@pytest.mark.parametrize("name", ["llama", "mistral-window", "qwen3-window-bias"])
def test_greedy_decoding_equals_transformers(name):
    """Prefill + token-by-token decoding through gatelab's KV caches (a sliding window's included) gives
    transformers' greedy continuation."""
    kind, options = ARCHITECTURES.get(name, ("llama", {}))
    model = tiny_model(kind, **options)
    lm = to_gatelab(model)
    prompt = ids(6, 1)
    theirs = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=20, do_sample=False,
                            pad_token_id=0)
    assert torch.equal(lm.generate(prompt, max_new_tokens=20), theirs)


def test_unsupported_architecture_names_the_supported_list():
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=1, n_head=2, n_positions=32))
    with pytest.raises(ConfigError, match="GPT2LMHeadModel is not supported; supported architectures: " +
                       ", ".join(SUPPORTED)):
        to_gatelab(model)


@pytest.mark.parametrize("overrides,match", [
    (dict(hidden_act="gelu"), "hidden_act 'gelu' is not SiLU"),
    (dict(mlp_bias=True), "mlp_bias"),
    (dict(rope_parameters={"rope_type": "dynamic", "rope_theta": 5000.0, "factor": 2.0}),
     "rope_type 'dynamic' is not supported; supported: default, linear, llama3, yarn"),
    (dict(rope_parameters={"rope_type": "yarn", "rope_theta": 5000.0, "factor": 4.0, "truncate": False,
                           "original_max_position_embeddings": 16}), "truncate=false"),
])
def test_what_does_not_map_is_refused_by_name(overrides, match):
    with pytest.raises(ConfigError, match=match):
        to_gatelab(tiny_model(**overrides))
