"""Each measurement on a case whose answer is known."""
import math

import pytest
import torch

from gatelab.analysis import inf_norm, kurtosis, measure, windows
from gatelab.analysis.metrics import ActivationMeter, SinkMeter, peak_over_median, uniform_f_attn
from gatelab.analysis.quant import RunningMinMax, quantize_asymmetric, quantize_symmetric, quantized
from gatelab.layers.rope import RopeScaling, RotaryEmbedding, rope_frequencies
from gatelab.models import DecoderLM, ModelConfig


def test_f_attn_is_one_when_every_query_attends_to_the_first_token():
    probs = torch.zeros(2, 3, 5, 5)
    probs[..., 0] = 1.0
    meter = SinkMeter()
    meter("blocks.0.mixer.attn_probe", probs)
    assert meter.result() == {"blocks.0.mixer.attn_probe": 1.0}


def test_f_attn_of_uniform_causal_attention_excludes_query_zero():
    """With q = 0 every query spreads evenly over its keys: position t puts 1 / (t + 1) on token 0."""
    torch.manual_seed(0)
    model = DecoderLM(ModelConfig(vocab_size=30, d_model=16, n_layers=2, n_heads=2, mixer="attn"))
    for block in model.blocks:
        torch.nn.init.zeros_(block.mixer.q_proj.weight)
    T = 8
    x, y = windows(torch.randint(0, 30, (4 * T + 1,)), T)
    r = measure(model, x, y)
    expected = sum(1 / (t + 1) for t in range(1, T)) / (T - 1)
    assert r["f_attn"]["per_layer"] == {0: pytest.approx(expected), 1: pytest.approx(expected)}
    assert r["f_attn"]["mean"] == pytest.approx(expected) == pytest.approx(uniform_f_attn(T))


def test_kurtosis_and_inf_norm_of_a_planted_outlier():
    n, a = 1000, 50.0
    x = torch.zeros(1, n)
    x[0, 123] = -a
    mu = -a / n
    m4 = ((-a - mu) ** 4 + (n - 1) * mu**4) / n
    var = ((-a - mu) ** 2 + (n - 1) * mu**2) / (n - 1)
    assert inf_norm(x).item() == a
    assert kurtosis(x).item() == pytest.approx(m4 / (var**2 + 1e-6), rel=1e-9)
    gaussian = torch.randn(4, 200_000, generator=torch.Generator().manual_seed(0))
    assert kurtosis(gaussian).mean().item() == pytest.approx(3.0, abs=0.05)


def test_peak_over_median_ignores_exact_zeros():
    x = torch.zeros(3, 10)
    x[0, :5] = torch.tensor([1.0, 2.0, 3.0, 4.0, -40.0])   # median of the nonzero |x|: 3
    x[1, 1:] = torch.arange(1.0, 10.0)                      # median 5
    torch.testing.assert_close(peak_over_median(x), torch.tensor([40 / 3, 9 / 5, 0.0], dtype=torch.float64))


def test_massive_activation_meter_keeps_the_max_and_the_median():
    meter = ActivationMeter()
    h = torch.ones(2, 5, 4)
    h[1, 2, 3] = -300.0
    meter("blocks.0", h)
    assert meter.result()["blocks.0"] == {"max": 300.0, "median": 1.0, "max_over_median": 300.0}


def test_fake_quantization_of_a_linear_layer_matches_a_direct_computation():
    torch.manual_seed(0)
    layer = torch.nn.Linear(6, 3, bias=True)
    calib = torch.randn(5, 6) * 2
    x = torch.randn(4, 6) * 3   # partly outside the calibrated range: clipped
    # by hand: symmetric 8-bit weights, scale max|w| / 127
    ws = layer.weight.abs().max() / 127
    w_q = torch.clamp(torch.round(layer.weight / ws), -127, 127) * ws
    # asymmetric 8-bit activations over [min, max] of the single calibration batch (0 included)
    lo, hi = min(calib.min().item(), 0.0), max(calib.max().item(), 0.0)
    s = (hi - lo) / 255
    z = round(-lo / s)
    x_q = (torch.clamp(torch.round(x / s) + z, 0, 255) - z) * s
    expected = x_q @ w_q.T + layer.bias
    before = layer.weight.detach().clone()
    with quantized(layer, [calib], skip=()) as q:
        torch.testing.assert_close(q(x), expected, rtol=0, atol=1e-6)
    assert torch.equal(layer.weight, before)   # the original model is untouched
    assert len(torch.unique(quantize_symmetric(torch.randn(1000), 4))) <= 15
    assert len(torch.unique(quantize_asymmetric(torch.randn(1000), -1.0, 2.0, 3))) <= 8


def test_running_min_max_uses_momentum_after_the_first_batch():
    r = RunningMinMax()
    r.update(torch.tensor([-1.0, 1.0]))
    r.update(torch.tensor([-3.0, 11.0]))
    assert (r.lo, r.hi) == (pytest.approx(-1.2), pytest.approx(2.0))


@pytest.mark.parametrize("kind", ["ntk", "yarn"])
def test_rope_scaling_at_factor_one_is_the_identity(kind):
    x = torch.randn(2, 9, 3, 16, dtype=torch.float64)
    plain = RotaryEmbedding(16)(x, offset=4)
    scaled = RotaryEmbedding(16, scaling=RopeScaling(kind, 1.0, 128))(x, offset=4)
    assert torch.equal(plain, scaled)


def test_ntk_scaling_raises_the_base():
    inv, factor = rope_frequencies(8, 10000.0, RopeScaling("ntk", 4.0, 128), torch.float64)
    torch.testing.assert_close(inv, (10000.0 * 4.0 ** (8 / 6)) ** (-torch.arange(4, dtype=torch.float64) / 4))
    assert factor == 1.0


@pytest.mark.parametrize("head_dim,original,factor", [(64, 128, 4.0), (32, 64, 8.0), (128, 2048, 2.0)])
def test_yarn_matches_transformers(head_dim, original, factor):
    from transformers import LlamaConfig
    from transformers.modeling_rope_utils import _compute_yarn_parameters

    config = LlamaConfig(hidden_size=4 * head_dim, num_attention_heads=4,
                         rope_parameters={"rope_type": "yarn", "factor": factor, "rope_theta": 10000.0,
                                          "original_max_position_embeddings": original})
    theirs, their_factor = _compute_yarn_parameters(config, "cpu")
    ours, our_factor = rope_frequencies(head_dim, 10000.0, RopeScaling("yarn", factor, original), torch.float64)
    torch.testing.assert_close(ours, theirs.double(), rtol=1e-6, atol=1e-9)   # theirs is float32
    assert our_factor == pytest.approx(their_factor) and our_factor == pytest.approx(0.1 * math.log(factor) + 1)


def test_f_attn_of_an_attention_layer_forced_onto_token_zero_is_one():
    """A real attention layer whose keys make token 0 win every query's softmax, read through its probe."""
    from gatelab.analysis.hooks import hooked
    from gatelab.registry import MIXERS

    layer = MIXERS.get("attn")(4, n_heads=1, rope=False)
    with torch.no_grad():
        for proj in (layer.q_proj, layer.k_proj, layer.v_proj):
            proj.weight.zero_()
        layer.q_proj.weight[1, 0] = 10.0   # q = (0, 10, 0, 0): every token carries x_0 = 1
        layer.k_proj.weight[1, 1] = 1.0    # k = (0, x_1, 0, 0): only token 0 has x_1 = 10
    x = torch.zeros(2, 9, 4)
    x[..., 0] = 1.0
    x[:, 0, 1] = 10.0
    meter = SinkMeter()
    with hooked(layer, ["attn_probe"], meter):
        layer(x)
    assert meter.result()["attn_probe"] == pytest.approx(1.0, abs=1e-12)
