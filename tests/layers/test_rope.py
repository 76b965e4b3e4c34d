"""Rotary embedding with a partial rotary (``rotary_fraction``) and context-extension scaling (linear, llama3, yarn
against transformers): closed form, transformers' layout, errors."""
import math

import pytest
import torch

from gatelab.config import ConfigError
from gatelab.layers.rope import RopeScaling, RotaryEmbedding, rope_frequencies
from gatelab.registry import MIXERS


def test_partial_rotary_closed_form():
    """head_dim 8, fraction 0.5: dims 0..3 rotate as pairs (0, 2) and (1, 3) at angles pos * 10000^(-2i/4),
    dims 4..7 pass unchanged."""
    x = torch.randn(2, 5, 3, 8, dtype=torch.float64)
    out = RotaryEmbedding(8, rotary_fraction=0.5)(x, offset=7)
    expected = x.clone()
    for t in range(5):
        for i in range(2):
            a = (7 + t) * 10000.0 ** (-2 * i / 4)
            c, s = math.cos(a), math.sin(a)
            expected[:, t, :, i] = x[:, t, :, i] * c - x[:, t, :, i + 2] * s
            expected[:, t, :, i + 2] = x[:, t, :, i + 2] * c + x[:, t, :, i] * s
    torch.testing.assert_close(out, expected, atol=1e-12, rtol=1e-12)


def test_partial_rotary_matches_transformers_qwen3_next():
    """Qwen3-Next's partial_rotary_factor 0.25: transformers rotates the first head_dim/4 dims, rotate-half within
    them, at frequencies of a head_dim/4-dim head."""
    qwen3_next = pytest.importorskip("transformers.models.qwen3_next.modeling_qwen3_next")
    D, R, T = 16, 4, 6
    q = torch.randn(1, 2, T, D, dtype=torch.float64)                                    # (B, H, T, D) theirs
    inv_freq = 10000.0 ** (-torch.arange(0, R, 2, dtype=torch.float64) / R)            # (R/2,)
    angles = torch.arange(T, dtype=torch.float64)[:, None] * inv_freq                  # (T, R/2)
    emb = torch.cat([angles, angles], dim=-1)[None]                                     # (1, T, R)
    theirs, _ = qwen3_next.apply_rotary_pos_emb(q, q, emb.cos(), emb.sin())
    ours = RotaryEmbedding(D, rotary_fraction=0.25)(q.transpose(1, 2)).transpose(1, 2)
    torch.testing.assert_close(ours, theirs, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("fraction", [0.25, 0.5, 1.0])
def test_scores_depend_on_relative_position_only(fraction):
    rope = RotaryEmbedding(8, rotary_fraction=fraction)
    q, k = torch.randn(1, 1, 1, 8, dtype=torch.float64), torch.randn(1, 1, 1, 8, dtype=torch.float64)
    s1 = (rope(q, 3) * rope(k, 1)).sum()
    s2 = (rope(q, 12) * rope(k, 10)).sum()
    torch.testing.assert_close(s1, s2, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("kind", ["ntk", "yarn"])
def test_scaling_works_on_a_two_dim_rotary(kind):
    """A quarter of an 8-dim head rotates 2 dims; NTK scaling must not divide by R - 2 = 0."""
    x = torch.randn(1, 4, 1, 8, dtype=torch.float64)
    out = RotaryEmbedding(8, rotary_fraction=0.25, scaling=RopeScaling(kind, 4.0, 16))(x)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[..., 2:], x[..., 2:])


@pytest.mark.parametrize("fraction,match", [(0.0, r"\(0, 1\]"), (1.5, r"\(0, 1\]"), (0.1, "rotates 0 dims"),
                                            (0.375, "rotates 3 dims")])
def test_bad_rotary_fraction_names_the_option(fraction, match):
    with pytest.raises(ConfigError, match=match):
        RotaryEmbedding(8, rotary_fraction=fraction)
    with pytest.raises(ConfigError, match=match):
        MIXERS.get("attn")(16, n_heads=2, rotary_fraction=fraction)


def test_integer_rotary_dims_equal_the_fraction_that_gives_them():
    x = torch.randn(2, 5, 3, 98, dtype=torch.float64)
    torch.testing.assert_close(RotaryEmbedding(98, rotary_dims=14)(x, 3),
                               RotaryEmbedding(98, rotary_fraction=1 / 7)(x, 3))
    assert RotaryEmbedding(98, rotary_dims=32).rotary_dim == 32                  # int(98 * (32 / 98)) is 31


@pytest.mark.parametrize("opts,match", [(dict(rotary_dims=0), "rotary_dims=0"), (dict(rotary_dims=3), "rotary_dims=3"),
                                        (dict(rotary_dims=10), "rotary_dims=10"),
                                        (dict(rotary_dims=4, rotary_fraction=0.5), "not both")])
def test_bad_rotary_dims(opts, match):
    with pytest.raises(ConfigError, match=match):
        RotaryEmbedding(8, **opts)


def test_rotary_fraction_needs_rope():
    with pytest.raises(ConfigError, match="rotary_fraction=0.5 has no effect with rope=False"):
        MIXERS.get("gated_attn")(16, n_heads=2, rope=False, rotary_fraction=0.5)


@pytest.mark.parametrize("key", ["attn", "gated_attn", "swa", "liger"])
def test_attention_mixers_pass_the_fraction_to_their_rope(key):
    assert MIXERS.get(key)(16, n_heads=2, rotary_fraction=0.25).rope.rotary_dim == 2


def transformers_frequencies(rope_parameters, head_dim=32, max_len=64):
    from transformers import LlamaConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    config = LlamaConfig(hidden_size=4 * head_dim, num_attention_heads=4, max_position_embeddings=max_len,
                         rope_parameters=dict(rope_parameters))
    return ROPE_INIT_FUNCTIONS[rope_parameters["rope_type"]](config, "cpu")


@pytest.mark.parametrize("params,scaling", [
    ({"rope_type": "linear", "factor": 4.0}, RopeScaling("linear", 4.0, 64)),
    ({"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
      "original_max_position_embeddings": 32}, RopeScaling("llama3", 8.0, 32)),
    ({"rope_type": "llama3", "factor": 4.0, "low_freq_factor": 2.0, "high_freq_factor": 16.0,
      "original_max_position_embeddings": 128}, RopeScaling("llama3", 4.0, 128, low_freq_factor=2.0,
                                                            high_freq_factor=16.0)),
    ({"rope_type": "yarn", "factor": 4.0, "attention_factor": 0.8, "original_max_position_embeddings": 16},
     RopeScaling("yarn", 4.0, 16, attention_factor=0.8)),
])
def test_linear_llama3_and_yarn_match_transformers(params, scaling):
    theirs, their_factor = transformers_frequencies({**params, "rope_theta": 10000.0})
    ours, our_factor = rope_frequencies(32, 10000.0, scaling, torch.float64)
    torch.testing.assert_close(ours, theirs.double(), rtol=1e-6, atol=1e-9)   # theirs is float32
    assert our_factor == pytest.approx(their_factor)


@pytest.mark.parametrize("kind", ["linear", "llama3"])
def test_linear_and_llama3_at_factor_one_are_the_identity(kind):
    x = torch.randn(2, 9, 3, 16, dtype=torch.float64)
    assert torch.equal(RotaryEmbedding(16)(x, 4), RotaryEmbedding(16, scaling=RopeScaling(kind, 1.0, 8))(x, 4))


def test_llama3_keeps_short_waves_and_divides_long_ones():
    plain, _ = rope_frequencies(32, 10000.0, None, torch.float64)
    ours, _ = rope_frequencies(32, 10000.0, RopeScaling("llama3", 8.0, 64), torch.float64)
    wavelength = 2 * math.pi / plain
    torch.testing.assert_close(ours[wavelength < 16], plain[wavelength < 16])              # 64 / high_freq_factor
    torch.testing.assert_close(ours[wavelength > 64], plain[wavelength > 64] / 8)          # 64 / low_freq_factor


@pytest.mark.parametrize("options,match", [
    (dict(kind="linear", factor=0.5, original_max_len=8), r"rope_scaling.factor=0.5 is out of range"),
    (dict(kind="linear", factor=2.0, original_max_len=0), r"rope_scaling.original_max_len=0 is out of range"),
    (dict(kind="yarn", factor=2.0, original_max_len=8, low_freq_factor=2.0), "applies to kind 'llama3' only"),
    (dict(kind="llama3", factor=2.0, original_max_len=8, attention_factor=1.2), "applies to kind 'yarn' only"),
    (dict(kind="llama3", factor=2.0, original_max_len=8, low_freq_factor=4.0), "must exceed low_freq_factor"),
    (dict(kind="yarn", factor=2.0, original_max_len=8, beta_fast=1.0), "beta_fast=1.0 must exceed beta_slow"),
    (dict(kind="yarn", factor=2.0, original_max_len=8, attention_factor=0.0), "attention_factor=0.0 is out of"),
    (dict(kind="dynamic", factor=2.0, original_max_len=8), "'dynamic' is not"),
])
def test_bad_rope_scaling_names_the_option(options, match):
    with pytest.raises(ConfigError, match=match):
        RopeScaling(**options)
    with pytest.raises(ConfigError, match=match):
        MIXERS.get("attn")(16, n_heads=2, rope_scaling=options)


def test_attention_takes_rope_scaling_as_an_option():
    layer = MIXERS.get("attn")(16, n_heads=2, rope_scaling={"kind": "llama3", "factor": 8.0, "original_max_len": 32})
    assert layer.rope.scaling == RopeScaling("llama3", 8.0, 32)
    with pytest.raises(ConfigError, match="rope_scaling has no effect with rope=False"):
        MIXERS.get("attn")(16, n_heads=2, rope=False, rope_scaling={"kind": "linear", "factor": 2.0,
                                                                     "original_max_len": 8})
