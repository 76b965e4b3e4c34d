"""The low-rank factorised FFN (Low-Rank Transformer / Greenformers) against the dense FFN with the product
weights, in float64."""
import pytest
import torch
import torch.nn.functional as F

from gatelab.config import ConfigError
from gatelab.layers.channel import LowRankFFN


@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_equals_the_dense_ffn_with_product_weights(activation):
    torch.manual_seed(0)
    layer = LowRankFFN(12, 40, rank=3, activation=activation).double()
    w1 = layer.w1.v.weight @ layer.w1.u.weight                                  # (d_ff, d_model), rank 3
    w2 = layer.w2.v.weight @ layer.w2.u.weight                                  # (d_model, d_ff), rank 3
    x = torch.randn(2, 5, 12, dtype=torch.float64)
    act = F.relu if activation == "relu" else F.gelu
    expected = act(x @ w1.T + layer.w1.v.bias) @ w2.T + layer.w2.v.bias
    torch.testing.assert_close(layer(x), expected, atol=1e-12, rtol=1e-12)
    assert torch.linalg.matrix_rank(w1) == 3 and torch.linalg.matrix_rank(w2) == 3


def test_biases_only_on_the_second_factor_and_optional():
    layer = LowRankFFN(12, 40, rank=3)
    assert layer.w1.u.bias is None and layer.w2.u.bias is None
    assert layer.w1.v.bias.shape == (40,) and layer.w2.v.bias.shape == (12,)
    assert layer.expected_num_params() == 2 * 3 * (12 + 40) + 40 + 12
    plain = LowRankFFN(12, 40, rank=3, bias=False)
    assert plain.w1.v.bias is None and plain.expected_num_params() == 2 * 3 * (12 + 40)


@pytest.mark.parametrize("d_model,rank,d_ff", [(128, 32, 512), (512, 128, 2048), (6, 1, 24)])
def test_default_rank_and_width(d_model, rank, d_ff):
    layer = LowRankFFN(d_model)
    assert (layer.rank, layer.d_ff) == (rank, d_ff)


def test_rank_must_make_the_layer_smaller_than_dense():
    """d_model 16, d_ff 64: d*f/(d+f) = 12.8, so rank 12 factorises (960 < 1024 weights) and 13 does not."""
    assert LowRankFFN(16, 64, rank=12).w1.u.weight.shape == (12, 16)
    with pytest.raises(ConfigError, match=r"rank=13 must be < d_model\*d_ff/\(d_model\+d_ff\) = 12.8"):
        LowRankFFN(16, 64, rank=13)
    with pytest.raises(ConfigError, match="rank=0"):
        LowRankFFN(16, rank=0)
    with pytest.raises(ConfigError, match="activation"):
        LowRankFFN(16, activation="swish")
