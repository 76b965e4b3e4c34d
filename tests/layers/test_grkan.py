"""GR-KAN (Yang & Wang 2024): the group-rational function against a direct evaluation, its initialisation against
the activations it fits, and the layer against its formula, in float64."""
import pytest
import torch
import torch.nn.functional as F

from gatelab.config import ConfigError
from gatelab.layers.channel import GRKAN
from gatelab.layers.channel.grkan import GroupRational, group_rational, rational_gain

F64 = torch.float64


def rational_reference(x, numerator, denominator):
    """Channel by channel: ``sum_i a_i x^i / (1 + sum_i |b_i| |x|^i)`` with the coefficients of the channel's
    group (a shared numerator has one row)."""
    channels, groups = x.shape[-1], denominator.shape[0]
    columns = []
    for c in range(channels):
        g = c // (channels // groups)
        a, b = numerator[g if numerator.shape[0] > 1 else 0], denominator[g]
        xc = x[..., c]
        p = sum(a[i] * xc**i for i in range(a.shape[0]))
        q = 1 + sum(b[i].abs() * xc.abs() ** (i + 1) for i in range(b.shape[0]))
        columns.append(p / q)
    return torch.stack(columns, -1)


def random_coefficients(groups, shared):
    torch.manual_seed(0)
    a = torch.randn(1 if shared else groups, 6, dtype=F64, requires_grad=True)
    b = torch.randn(groups, 4, dtype=F64, requires_grad=True)                      # negative entries included
    return a, b


@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("groups", [1, 4])
def test_group_rational_matches_direct_evaluation_with_gradients(groups, shared):
    a, b = random_coefficients(groups, shared)
    x = (3 * torch.randn(2, 5, 8, dtype=F64)).requires_grad_()
    y, expected = group_rational(x, a, b), rational_reference(x, a, b)
    torch.testing.assert_close(y, expected, atol=1e-10, rtol=1e-10)
    g = torch.randn_like(y)
    grads = torch.autograd.grad(y, (x, a, b), g)
    expected_grads = torch.autograd.grad(expected, (x, a, b), g)
    for got, want in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-10)


def test_group_rational_gradcheck():
    a, b = random_coefficients(2, shared=False)
    x = torch.randn(1, 3, 4, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(group_rational, (x, a, b))


def test_denominator_is_at_least_one():
    """With P = 1 the output is 1 / Q: in (0, 1] for any x and any (negative) denominator coefficients."""
    a = torch.tensor([[1.0, 0, 0, 0, 0, 0]], dtype=F64)
    b = -torch.rand(2, 4, dtype=F64)
    x = torch.linspace(-1e3, 1e3, 4001, dtype=F64).view(1, -1, 1).expand(1, -1, 4)
    inv_q = group_rational(x, a, b)
    assert inv_q.max() == 1 and inv_q.min() > 0


def test_group_boundaries_follow_contiguous_channels():
    a = torch.tensor([[0.0, 1, 0, 0, 0, 0]], dtype=F64)
    b = torch.tensor([[0.0, 0, 0, 0], [1.0, 0, 0, 0]], dtype=F64)                # group 1: x / (1 + |x|)
    x = torch.full((1, 1, 6), 2.0, dtype=F64)
    assert group_rational(x, a, b).flatten().tolist() == [2, 2, 2, 2 / 3, 2 / 3, 2 / 3]


def max_error_on_minus3_3(init, target):
    x = torch.linspace(-3, 3, 6001, dtype=F64).view(1, -1, 1).expand(1, -1, 8)
    rational = GroupRational(init, num_groups=8, shared_numerator=True).double()
    with torch.no_grad():
        return (rational(x) - target(x)).abs().max().item()


def test_initial_activations_fit_their_targets():
    """R1 is the identity; R2 fits GELU within 4.2e-3 on [-3, 3] (init.json's least-squares fit; measured
    4.14e-3, largest at |x| = 3) and swish within 2e-6. The coefficients the released code loads as "gelu" fit
    another denominator: under the kernels' they miss GELU by 1.46 at x = 3."""
    assert max_error_on_minus3_3("identity", lambda x: x) == 0
    assert max_error_on_minus3_3("gelu", F.gelu) < 4.2e-3
    assert max_error_on_minus3_3("swish", F.silu) < 2e-6
    assert max_error_on_minus3_3("gelu_as_released", F.gelu) == pytest.approx(1.4649, abs=1e-4)


def test_zero_denominator_coefficients_still_learn():
    """The identity init has b = 0; |b| takes the slope copysign(1, b) = +1 there, as in the official kernels."""
    rational = GroupRational("identity", num_groups=2, shared_numerator=True).double()
    rational(torch.randn(2, 3, 4, dtype=F64)).square().sum().backward()
    assert (rational.denominator.grad != 0).all() and rational.numerator.grad.shape == (1, 6)


def test_layer_matches_its_formula_and_counts():
    torch.manual_seed(0)
    layer = GRKAN(8, 16, num_groups=4, shared_numerator=False).double()
    with torch.no_grad():
        for p in (layer.act1.numerator, layer.act1.denominator, layer.act2.numerator, layer.act2.denominator):
            p.normal_()
    x = torch.randn(2, 5, 8, dtype=F64)
    r1 = rational_reference(x, layer.act1.numerator, layer.act1.denominator)
    h = r1 @ layer.fc1.weight.T + layer.fc1.bias
    r2 = rational_reference(h, layer.act2.numerator, layer.act2.denominator)
    torch.testing.assert_close(layer(x), r2 @ layer.fc2.weight.T + layer.fc2.bias, atol=1e-10, rtol=1e-10)
    assert layer.act1.numerator.shape == (4, 6) and layer.act2.denominator.shape == (4, 4)
    assert GRKAN(128).expected_num_params() == 2 * (6 + 32) + 2 * 128 * 512 + 512 + 128


def test_variance_preserving_initialisation():
    """fc weights ~ N(0, gain^2 / fan_in), gain from the rational that feeds them: unit-variance inputs give
    unit-variance hidden and output activations."""
    torch.manual_seed(0)
    layer = GRKAN(256).double()
    assert layer.fc1.weight.std().item() == pytest.approx(1 / 16, rel=0.02)
    assert layer.fc2.weight.std().item() == pytest.approx(rational_gain("gelu") / 32, rel=0.02)
    assert rational_gain("identity") == pytest.approx(1.0) and rational_gain("gelu") == pytest.approx(1.5335, 1e-3)
    x = torch.randn(4, 256, 256, dtype=F64)
    with torch.no_grad():
        h = layer.fc1(layer.act1(x))
        assert h.var().item() == pytest.approx(1.0, rel=0.1)
        assert layer(x).var().item() == pytest.approx(1.0, rel=0.1)
    trunc = GRKAN(256, weight_init="trunc_normal")
    assert trunc.fc2.weight.std().item() == pytest.approx(0.02, rel=0.02) and (trunc.fc2.bias == 0).all()


def test_rational_runs_in_float32_for_low_precision_inputs():
    """A bfloat16 input is evaluated in float32 with the (bfloat16) coefficients and rounded once at the end."""
    layer = GroupRational("gelu", num_groups=2, shared_numerator=True).to(torch.bfloat16)
    x = torch.linspace(-3, 3, 64, dtype=torch.bfloat16).view(1, 8, 8)
    expected = group_rational(x.float(), layer.numerator.float(), layer.denominator.float()).to(torch.bfloat16)
    assert torch.equal(layer(x), expected)


@pytest.mark.parametrize("d_model,d_ff,groups,field", [(12, None, 8, "d_model=12"), (16, 36, 8, "d_ff=36"),
                                                       (16, 36, 0, "num_groups=0")])
def test_group_count_must_divide_both_widths(d_model, d_ff, groups, field):
    with pytest.raises(ConfigError, match=f"num_groups.*{field}|{field}"):
        GRKAN(d_model, d_ff, num_groups=groups)


def test_width_multiple_is_the_group_count():
    layer = GRKAN(16, num_groups=4)
    assert layer.d_ff_multiple == 4 and GRKAN(16, 3 * layer.d_ff_multiple, num_groups=4).d_ff == 12


def test_bad_init_names_are_config_errors():
    with pytest.raises(ConfigError, match="act_init"):
        GRKAN(16, act_init="relu")
    with pytest.raises(ConfigError, match="weight_init"):
        GRKAN(16, weight_init="kaiming")
