"""HorNet's g^nConv: the widths and projections of its recursion, order-n interactions (degree n + 1 in the
input), the causal convolution window, and bad options."""
import pytest
import torch
import torch.nn.functional as F

from gatelab.config import ConfigError
from gatelab.registry import MIXERS


def build(d=16, **opts):
    torch.manual_seed(0)
    return MIXERS.get("hornet")(d, **opts).double()


def reference(m, x):
    """gnconv: proj_in, split, causal depthwise conv * s, p_{k+1} = pw_k(p_k) * q_k, proj_out."""
    n, k = m.config.order, m.config.kernel_size
    dims = [x.shape[-1] // 2 ** (n - 1 - i) for i in range(n)]
    fused = x @ m.proj_in.weight.T + m.proj_in.bias
    p, q = fused[..., :dims[0]], fused[..., dims[0]:]
    w = m.dwconv.conv.weight[:, 0]                                             # (ΣC, k)
    padded = F.pad(q, (0, 0, k - 1, 0))
    q = torch.stack([(padded[:, t:t + k] * w.T).sum(1) for t in range(x.shape[1])], 1) + m.dwconv.conv.bias
    qs = (q * m.config.scale).split(dims, -1)
    p = p * qs[0]
    for i in range(n - 1):
        p = (p @ m.pws[i].weight.T + m.pws[i].bias) * qs[i + 1]
    return p @ m.proj_out.weight.T + m.proj_out.bias


@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_the_layer_is_gnconv(order):
    m = build(order=order, kernel_size=4)
    x = torch.randn(2, 9, 16, dtype=torch.float64)
    torch.testing.assert_close(m(x)[0], reference(m, x), atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("order,dims", [(1, [16]), (2, [8, 16]), (3, [4, 8, 16]), (5, [1, 2, 4, 8, 16])])
def test_widths_double_through_the_recursion(order, dims):
    m = build(order=order)
    assert m.dims == dims
    assert m.proj_in.out_features == 2 * 16 == dims[0] + sum(dims)
    assert [(pw.in_features, pw.out_features) for pw in m.pws] == list(zip(dims[:-1], dims[1:], strict=True))
    assert m.dwconv.conv.in_channels == sum(dims)


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_each_output_is_an_interaction_of_order_n_plus_one(order):
    """Without biases, g^nConv is a homogeneous polynomial of degree n + 1: y(a x) = a^(n+1) y(x)."""
    m = build(order=order, kernel_size=3)
    with torch.no_grad():
        for module in m.modules():
            if getattr(module, "bias", None) is not None:
                module.bias.zero_()
    x = torch.randn(1, 6, 16, dtype=torch.float64)
    y, y2 = m(x)[0], m(2 * x)[0]
    torch.testing.assert_close(y2, 2 ** (order + 1) * y, atol=1e-10, rtol=1e-10)
    assert not torch.allclose(y2, 2 ** order * y)


def test_outputs_see_the_last_kernel_size_tokens_only():
    m = build(kernel_size=4)
    x = torch.randn(1, 12, 16, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(m(x)[0][:, 8].sum(), x)
    reach = grad[0].abs().sum(-1)
    assert (reach[5:9] > 0).all() and reach[:5].abs().max() == 0 and reach[9:].abs().max() == 0


def test_defaults_follow_the_paper():
    m = MIXERS.get("hornet")(32)
    assert (m.config.order, m.config.kernel_size, m.config.scale) == (3, 7, 1 / 3)
    assert m.state_size(100) == sum(m.dims) * 6 and m.state_size(2) == sum(m.dims) * 2


@pytest.mark.parametrize("d_model,options,name", [(16, {"order": 0}, "order"), (12, {"order": 4}, "order"),
                                                  (16, {"kernel_size": 0}, "kernel_size"),
                                                  (16, {"kernel_size": 1025}, r"kernel_size.*\[1, 1024\]"),
                                                  (16, {"scale": 0.0}, "scale")])
def test_bad_options_name_the_option(d_model, options, name):
    with pytest.raises(ConfigError, match=name):
        MIXERS.get("hornet")(d_model, **options)
