"""MossFormer2's gated dilated FSMN: the block as a readable causal version of the official code, the dilation
schedule and the receptive field it gives, the gate, the state, and bad options."""
import pytest
import torch
import torch.nn.functional as F

from gatelab.config import ConfigError
from gatelab.layers.token.fsmn import DilatedCausalConv
from gatelab.registry import MIXERS


def build(d=8, **opts):
    torch.manual_seed(0)
    m = MIXERS.get("fsmn")(d, **opts).double()
    with torch.no_grad():                       # move the affine maps and slopes off their initial values
        for p in (*m.memory.weights, *m.memory.biases, *m.memory.slopes):
            p.normal_()
    return m


def causal_conv(x, weight, dilation=1, groups=None):
    """x [B, T, C_in] through a Conv1d weight [C_out, C_in / groups, k] reading only the past."""
    pad = (weight.shape[-1] - 1) * dilation
    y = F.conv1d(F.pad(x.transpose(1, 2), (pad, 0)), weight, dilation=dilation, groups=groups or x.shape[-1])
    return y.transpose(1, 2)


def reference(m, x):
    """Gated_FSMN_Block_Dilated without its residual, every convolution left-padded, InstanceNorm -> its affine."""
    C = m.inner

    def unit(branch, a):
        z = F.silu(branch.linear(F.layer_norm(a, (C,), branch.norm.weight, branch.norm.bias)))
        return z + causal_conv(z, branch.conv.conv.weight)

    a = F.prelu(x @ m.in_proj.weight.T + m.in_proj.bias, m.in_act.weight)
    a = F.layer_norm(a, (C,), m.in_norm.weight, m.in_norm.bias)
    u, v = unit(m.to_u, a), unit(m.to_v, a)
    skip = F.relu(u @ m.hidden.weight.T + m.hidden.bias) @ m.project.weight.T
    for i, conv in enumerate(m.memory.convs):
        out = causal_conv(skip, conv.conv.weight, dilation=2**i, groups=C) * m.memory.weights[i] + m.memory.biases[i]
        out = torch.where(out >= 0, out, m.memory.slopes[i] * out)
        skip = torch.cat([out, skip], -1)
    g = v * (u + out) + a
    return m.out_proj(F.layer_norm(g, (C,), m.out_norm.weight, m.out_norm.bias))


@pytest.mark.parametrize("opts", [dict(lorder=3, depth=2, conv_kernel_size=3), dict(inner_dim=6, lorder=2, depth=3),
                                  dict(lorder=1, conv_kernel_size=1)])
def test_the_layer_is_the_causal_gated_fsmn_block(opts):
    m = build(**opts)
    x = torch.randn(2, 15, 8, dtype=torch.float64)
    torch.testing.assert_close(m(x)[0], reference(m, x), atol=1e-12, rtol=1e-12)


def test_dilations_double_and_each_layer_reads_every_earlier_one():
    m = build(inner_dim=4, lorder=5, depth=3)
    for i, conv in enumerate(m.memory.convs):
        assert conv.conv.dilation == (2**i,) and conv.conv.kernel_size == (5,) and conv.conv.groups == 4
        assert conv.conv.in_channels == 4 * (i + 1) and conv.conv.out_channels == 4
    shapes = [s.shape for s in m.init_state(2)[2]]
    assert shapes == [(2, 4, 4), (2, 8, 8), (2, 16, 12)]   # (lorder - 1) 2^i inputs of (i + 1) C channels


@pytest.mark.parametrize("lorder,depth,kernel", [(3, 2, 3), (2, 3, 1), (4, 1, 5)])
def test_receptive_field_follows_the_dilations(lorder, depth, kernel):
    m = build(inner_dim=16, lorder=lorder, depth=depth, conv_kernel_size=kernel)   # (wide: some relu passes)
    reach = m.receptive_field()
    assert reach == (kernel - 1) + (lorder - 1) * (2**depth - 1)
    T = reach + 4
    x = torch.randn(1, T, 8, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(m(x)[0][:, T - 1].sum(), x)
    seen = grad[0].abs().sum(-1) > 0
    assert seen[T - 1 - reach] and not seen[:T - 1 - reach].any() and seen[T - 1]


def test_a_closed_gate_shuts_the_memory_out():
    m = build(lorder=3, depth=2, conv_kernel_size=3)
    with torch.no_grad():
        m.to_v.linear.weight.zero_(), m.to_v.linear.bias.zero_()            # v = silu(0) = 0
    x = torch.randn(1, 10, 8, dtype=torch.float64, requires_grad=True)
    y, _ = m(x)
    (grad,) = torch.autograd.grad(y[:, 9].sum(), x)
    assert grad[:, :9].abs().max() == 0                                       # only the token itself is left


def test_defaults_follow_mossformer2():
    m = MIXERS.get("fsmn")(32)
    c = m.config
    assert (m.inner, c.lorder, c.depth, c.conv_kernel_size) == (16, 20, 2, 9)
    assert m.receptive_field() == 8 + 19 * 3
    assert m.state_size(1000) == 2 * 16 * 8 + 16 * 19 + 2 * 16 * 38


def test_a_dilated_layer_builds_its_one_convolution_only():
    """No throw-away depthwise conv first: the seeded init is a plain Conv1d's, and nothing else is drawn."""
    torch.manual_seed(3)
    conv = DilatedCausalConv(6, 3, 4, 2, 3)
    after = torch.rand(1)
    torch.manual_seed(3)
    plain = torch.nn.Conv1d(6, 3, 4, dilation=2, groups=3, bias=False)
    assert torch.equal(conv.conv.weight, plain.weight) and torch.equal(after, torch.rand(1))
    assert [m for m in conv.modules() if isinstance(m, torch.nn.Conv1d)] == [conv.conv]
    assert conv.init_state(2).shape == (2, 6, 6)                                  # (k - 1) dilation inputs


@pytest.mark.parametrize("option", ["inner_dim", "lorder", "depth", "conv_kernel_size"])
def test_bad_options_name_the_option(option):
    with pytest.raises(ConfigError, match=option):
        MIXERS.get("fsmn")(8, **{option: 0})


@pytest.mark.parametrize("option,value,allowed", [("lorder", 1025, r"\[1, 1024\]"), ("depth", 17, r"\[1, 16\]"),
                                                  ("conv_kernel_size", 1025, r"\[1, 1024\]")])
def test_too_large_options_name_the_option(option, value, allowed):
    with pytest.raises(ConfigError, match=f"{option}.*{allowed}"):
        MIXERS.get("fsmn")(8, **{option: value})
