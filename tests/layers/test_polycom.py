"""PolyNorm and PolyReLU (Zhuo et al. 2024) against their formulas written out by hand, in float64."""
import pytest
import torch

from gatelab.config import ConfigError
from gatelab.layers.channel import PolyCom, SwiGLU
from gatelab.layers.channel.mlp import default_swiglu_width


def rms(z):
    return z / torch.sqrt((z * z).mean(-1, keepdim=True) + 1e-6)


def randomised(**options) -> PolyCom:
    torch.manual_seed(0)
    layer = PolyCom(8, 12, **options).double()
    with torch.no_grad():
        layer.weight.normal_()
        layer.bias.normal_()
    return layer


def test_polynorm_matches_its_formula():
    layer = randomised()
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    h = x @ layer.fc1.weight.T
    w0, w1, w2 = layer.weight
    act = w0 * rms(h * h * h) + w1 * rms(h * h) + w2 * rms(h) + layer.bias
    torch.testing.assert_close(layer(x), act @ layer.fc2.weight.T, atol=1e-12, rtol=1e-12)


def test_polyrelu_matches_its_formula():
    layer = randomised(activation="polyrelu")
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    r = (x @ layer.fc1.weight.T).clamp(min=0)
    w0, w1, w2 = layer.weight
    act = w0 * r * r * r + w1 * r * r + w2 * r + layer.bias
    torch.testing.assert_close(layer(x), act @ layer.fc2.weight.T, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("activation", ["polynorm", "polyrelu"])
def test_order_five_puts_the_first_coefficient_on_the_highest_power(activation):
    layer = randomised(activation=activation, order=5)
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    h = x @ layer.fc1.weight.T
    if activation == "polyrelu":
        h = h.clamp(min=0)
    norm = rms if activation == "polynorm" else (lambda z: z)
    act = sum(layer.weight[j] * norm(h ** (5 - j)) for j in range(5)) + layer.bias
    torch.testing.assert_close(layer(x), act @ layer.fc2.weight.T, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("order", [1, 3, 4])
def test_initial_coefficients_and_no_linear_biases(order):
    layer = PolyCom(8, order=order)
    assert torch.equal(layer.weight, torch.full((order,), 1.0 / order)) and torch.equal(layer.bias, torch.zeros(1))
    assert layer.fc1.bias is None and layer.fc2.bias is None


@pytest.mark.parametrize("d_model", [128, 2048, 24])
def test_default_width_is_three_halves_of_swiglu_and_matches_its_weights(d_model):
    layer = PolyCom(d_model)
    assert layer.d_ff == default_swiglu_width(d_model) * 3 // 2
    weights = layer.fc1.weight.numel() + layer.fc2.weight.numel()
    assert weights == SwiGLU(d_model).expected_num_params()
    assert layer.expected_num_params() == weights + 4


def test_polynorm_is_scale_invariant_in_each_power():
    """RMS normalisation over the hidden dim: scaling h by c > 0 leaves PolyNorm unchanged (up to eps)."""
    layer = randomised()
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    with torch.no_grad():
        y = layer(x)
        layer.fc1.weight.mul_(3.0)
        torch.testing.assert_close(layer(x), y, atol=1e-4, rtol=1e-4)


def test_bad_options_are_config_errors():
    with pytest.raises(ConfigError, match="order=0"):
        PolyCom(8, order=0)
    with pytest.raises(ConfigError, match="activation.*'polynorm', 'polyrelu'"):
        PolyCom(8, activation="gelu")
    with pytest.raises(ConfigError, match="d_ff=-1"):
        PolyCom(8, -1)
