"""Rotary embedding with a partial rotary (``rotary_fraction``): closed form, transformers' layout, errors."""
import math

import pytest
import torch

from gatelab.config import ConfigError
from gatelab.layers.rope import RopeScaling, RotaryEmbedding
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
