"""The ``mossformer`` mixer: the unit recomputed by hand from its modules (token shift, FFConvM projections,
offset-scale, per-token attention, joint or FLASH gating), its decoding state, and bad options."""
import pytest
import torch
import torch.nn.functional as F

from gatelab.config import ConfigError
from gatelab.ops import recurrent_mossformer_attention
from gatelab.registry import MIXERS


def unit_by_hand(m, x):
    """The unit's definition on a whole sequence, with the per-token attention reference."""
    c, T = m.config, x.shape[1]
    half = (x.shape[-1] + 1) // 2
    if c.shift_tokens:
        x = torch.cat([F.pad(x[..., :half], (0, 0, 1, 0))[:, :T], x[..., half:]], -1)
    hidden, _ = m.to_hidden(x, None)
    z, _ = m.to_qk(x, None)
    v, u = hidden.chunk(2, -1)
    maps = [z * m.gamma[i] + m.beta[i] for i in range(4)]                       # quad_q, lin_q, quad_k, lin_k
    if m.rope is not None:
        maps = [m.rope(t.unsqueeze(2)).squeeze(2) for t in maps]
    qq, ql, kq, kl = (t.unsqueeze(2) for t in maps)

    def attn(values):
        return recurrent_mossformer_attention(qq, kq, ql, kl, values.unsqueeze(2), chunk_size=c.group_size)[0][:, :, 0]

    gated = attn(u) * v * torch.sigmoid(attn(v) * u) if c.gating == "joint" else u * attn(v)
    return m.to_out(gated, None)[0]


@pytest.mark.parametrize("opts", [dict(group_size=4, query_key_dim=12, kernel_size=3),
                                  dict(group_size=3, gating="flash", rope=False, expansion_factor=2.0),
                                  dict(group_size=5, shift_tokens=False, query_key_dim=6)])
def test_layer_equals_the_unit_computed_by_hand(opts):
    m = MIXERS.get("mossformer")(15, **opts).double()
    with torch.no_grad():
        m.gamma.normal_()                                                          # scores of order 1
    x = torch.randn(2, 13, 15, dtype=torch.float64)
    torch.testing.assert_close(m(x)[0], unit_by_hand(m, x), atol=1e-10, rtol=1e-10)


def test_defaults_are_mossformers_and_init_is_offset_scale():
    m = MIXERS.get("mossformer")(16)
    c = m.config
    assert (c.group_size, c.query_key_dim, c.expansion_factor, c.kernel_size) == (256, 128, 4.0, 17)
    assert m.to_out.proj.in_features == 2 * 16 and m.rope.rotary_dim == 32
    assert m.beta.abs().max() == 0 and 0.01 < m.gamma.std() < 0.03


def test_state_holds_the_linear_state_and_the_current_groups_keys():
    m = MIXERS.get("mossformer")(8, group_size=4, query_key_dim=6, kernel_size=3)
    _, state = m(torch.randn(3, 10, 8))
    assert state.offset == 10 and state.linear.shape == (3, 1, 6, 32)
    assert [t.shape[1] for t in state.group] == [2, 2, 2]                         # 10 mod 4 tokens
    _, state = m.step(torch.randn(3, 2, 8), state)
    assert [t.shape[1] for t in state.group] == [0, 0, 0]
    assert m.state_size(10) == 6 * 32 + 2 * (2 * 6 + 32) + 2 * (32 + 6 + 8) + 4


def test_scalenorm_is_mossformers_official_norm():
    """``norm='scalenorm'``: ``x / clamp(||x|| d^-1/2, eps) * g`` with one scalar g (init 1) in each projection; the
    default stays LayerNorm."""
    assert isinstance(MIXERS.get("mossformer")(16).to_qk.norm, torch.nn.LayerNorm)
    m = MIXERS.get("mossformer")(10, norm="scalenorm", query_key_dim=6, kernel_size=3).double()
    for ffconv, width in ((m.to_hidden, 10), (m.to_qk, 10), (m.to_out, 20)):
        assert [p.shape for p in ffconv.norm.parameters()] == [torch.Size([1])]
        with torch.no_grad():
            ffconv.norm.g.fill_(1.7)
        x = torch.randn(3, 4, width, dtype=torch.float64)
        x[0, 0] = 0.0                                                              # the clamp: 0, not nan
        want = x / (x.norm(dim=-1, keepdim=True) * width ** -0.5).clamp(min=1e-5) * 1.7
        torch.testing.assert_close(ffconv.norm(x), want, atol=1e-12, rtol=1e-12)
    x = torch.randn(2, 9, 10, dtype=torch.float64)
    torch.testing.assert_close(m(x)[0], unit_by_hand(m, x), atol=1e-10, rtol=1e-10)
    count = sum(p.numel() for p in m.parameters())
    layernorm = MIXERS.get("mossformer")(10, query_key_dim=6, kernel_size=3)
    assert count == m.expected_num_params() == layernorm.expected_num_params() - (2 * 10 - 1) * 2 - (2 * 20 - 1)


@pytest.mark.parametrize("s,rotary", [(98, 32), (196, 32), (206, 32), (214, 32), (30, 30), (2, 2)])
def test_rope_rotates_exactly_min_32_s_dims(s, rotary):
    """MossFormer's RotaryEmbedding(dim=min(32, s)): an integer width, whatever s (a fraction 32/s times s can
    round down to 31)."""
    m = MIXERS.get("mossformer")(16, query_key_dim=s)
    assert m.rope.rotary_dim == rotary


@pytest.mark.parametrize("opts,match", [
    (dict(group_size=0), "group_size"),
    (dict(query_key_dim=0), "query_key_dim"),
    (dict(kernel_size=0), "kernel_size"),
    (dict(expansion_factor=0.0), "expansion_factor"),
    (dict(expansion_factor=1.3), "expansion_factor=1.3 gives a hidden width"),
    (dict(query_key_dim=7), "query_key_dim=7 must be even"),
    (dict(rope=False, rope_base=500.0), "rope_base"),
    (dict(gating="softmax"), "'softmax' is not allowed"),
    (dict(norm="rmsnorm"), "'rmsnorm' is not allowed"),
    (dict(norm_eps=0.0), "norm_eps"),
])
def test_bad_options_fail_at_construction(opts, match):
    with pytest.raises(ConfigError, match=match):
        MIXERS.get("mossformer")(10, **opts)
