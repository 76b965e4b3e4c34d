"""The GLU family and the MLP against their formulas written out by hand (Shazeer 2020, eq. 5-6), in float64."""
import math

import pytest
import torch

from gatelab.config import ConfigError
from gatelab.layers import MLP, SwiGLU
from gatelab.layers.channel import GEGLU, GLU, Bilinear, ReGLU
from gatelab.layers.channel.mlp import default_swiglu_width
from gatelab.registry import CHANNEL_MIXERS


def gelu(z):
    return 0.5 * z * (1 + torch.erf(z / math.sqrt(2)))


def sigmoid(z):
    return 1 / (1 + torch.exp(-z))


GATES = {
    "glu": sigmoid,
    "bilinear": lambda z: z,
    "reglu": lambda z: torch.where(z > 0, z, torch.zeros_like(z)),
    "geglu": gelu,
    "swiglu": lambda z: z * sigmoid(z),
}


@pytest.mark.parametrize("key", sorted(GATES))
def test_gated_ffn_matches_its_formula(key):
    torch.manual_seed(0)
    layer = CHANNEL_MIXERS.get(key)(12, 20).double()
    x = torch.randn(3, 7, 12, dtype=torch.float64)
    gate = x @ layer.w1.weight.T                                                  # (3, 7, 20)
    value = x @ layer.w3.weight.T
    expected = (GATES[key](gate) * value) @ layer.w2.weight.T
    torch.testing.assert_close(layer(x), expected, atol=1e-12, rtol=1e-12)
    assert all(m.bias is None for m in (layer.w1, layer.w2, layer.w3))


def test_variants_differ_only_in_the_gate():
    """Same weights, different gate activation: different outputs (each key has its own activation)."""
    torch.manual_seed(0)
    layers = [CHANNEL_MIXERS.get(key)(8, 16).double() for key in sorted(GATES)]
    for layer in layers[1:]:
        layer.load_state_dict(layers[0].state_dict())
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    outputs = [layer(x) for layer in layers]
    for i in range(len(outputs)):
        for j in range(i + 1, len(outputs)):
            assert not torch.allclose(outputs[i], outputs[j])


def test_mlp_matches_its_formula():
    torch.manual_seed(0)
    layer = MLP(12, 20).double()
    x = torch.randn(3, 7, 12, dtype=torch.float64)
    hidden = gelu(x @ layer.w1.weight.T + layer.w1.bias)
    torch.testing.assert_close(layer(x), hidden @ layer.w2.weight.T + layer.w2.bias, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("d_model,width", [(128, 344), (256, 688), (16, 48), (3, 8)])
def test_default_widths(d_model, width):
    assert default_swiglu_width(d_model) == width
    for cls in (GLU, Bilinear, ReGLU, GEGLU, SwiGLU):
        layer = cls(d_model)
        assert layer.d_ff == width and layer.expected_num_params() == 3 * d_model * width
    assert MLP(d_model).d_ff == 4 * d_model


@pytest.mark.parametrize("cls", [MLP, SwiGLU, GEGLU])
def test_bad_width_and_unknown_options_are_config_errors(cls):
    with pytest.raises(ConfigError, match="d_ff=0"):
        cls(8, 0)
    with pytest.raises(ConfigError, match="d_model=0"):
        cls(0)
    with pytest.raises(ConfigError, match="unknown config key .*bias"):
        cls(8, bias=True)
