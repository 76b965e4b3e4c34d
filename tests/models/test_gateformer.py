"""Gateformer as a gatelab forecaster: shapes, the instance normalisation, the patches, the two gates against a
hand computation, the parameter count against the official layers, gradients, both encoders in the loop's
methods, and bad options."""
import math

import pytest
import torch
from torch import nn

from gatelab.config import ConfigError, from_dict
from gatelab.models.config import ModelConfig
from gatelab.models.forecaster import Forecaster, ForecasterConfig
from gatelab.models.gateformer import (
    Gate,
    Gateformer,
    build_forecaster,
    cut_patches,
    instance_norm,
    n_patches,
    sinusoidal_positions,
)

GATEFORMER = ForecasterConfig(architecture="gateformer", patch_len=4)


def tiny(mixer: str = "attn", bidirectional: bool = True, **model) -> ModelConfig:
    return ModelConfig(d_model=16, n_layers=2, n_heads=2, d_ff=16, mixer=mixer, bidirectional=bidirectional,
                       **model)


def gateformer(config: ModelConfig | None = None, head: ForecasterConfig = GATEFORMER, lookback: int = 16,
               horizon: int = 5, n_in: int = 3, out_index=(1, 2)) -> Gateformer:
    return build_forecaster(config or tiny(), head, lookback, horizon, n_in, list(out_index))


def test_build_forecaster_picks_the_architecture_and_shapes():
    model = gateformer()
    assert type(model) is Gateformer
    labels = torch.randn(4, 5, 2)
    out = model(torch.randn(4, 16, 3), labels)
    assert out.logits.shape == (4, 5, 2) and out.loss.shape == () and out.aux_loss is None
    torch.testing.assert_close(out.loss, ((out.logits - labels) ** 2).mean())
    encoder = build_forecaster(tiny(), ForecasterConfig(), 16, 5, 3, [2])
    assert type(encoder) is Forecaster and encoder(torch.randn(4, 16, 3)).logits.shape == (4, 5, 1)


def test_out_index_selects_the_variates_of_the_full_forecast():
    full = gateformer(out_index=(0, 1, 2)).double().eval()
    last = gateformer(out_index=(2,)).double().eval()
    last.load_state_dict(full.state_dict())
    x = torch.randn(2, 16, 3, dtype=torch.float64)
    torch.testing.assert_close(last(x).logits, full(x).logits[..., 2:], rtol=0, atol=1e-12)


def test_patch_count_and_patches():
    assert n_patches(96, 8) == 13
    assert build_forecaster(tiny(), ForecasterConfig(architecture="gateformer"), 96, 24, 2, [1]).n_patches == 13
    series = torch.randn(3, 10)
    patches = cut_patches(series, 4)                                                       # (3, N, 4)
    padded = [list(s) + [s[-1]] * 4 for s in series.tolist()]
    expected = [[row[n * 4:n * 4 + 4] for n in range(n_patches(10, 4))] for row in padded]
    assert patches.shape == (3, n_patches(10, 4), 4) == (3, 3, 4)
    torch.testing.assert_close(patches, torch.tensor(expected))


def test_instance_norm_by_hand():
    x = torch.randn(2, 7, 3, dtype=torch.float64) * 3 + 1
    xn, mean, std = instance_norm(x)
    for b in range(2):
        for c in range(3):
            col = x[b, :, c].tolist()
            m = sum(col) / len(col)
            s = math.sqrt(sum((v - m) ** 2 for v in col) / len(col) + 1e-5)
            assert abs(mean[b, 0, c].item() - m) < 1e-12 and abs(std[b, 0, c].item() - s) < 1e-12
            torch.testing.assert_close(xn[b, :, c], (x[b, :, c] - m) / s, rtol=0, atol=1e-12)


def test_sinusoidal_positions():
    table = sinusoidal_positions(5, 7)                                                      # odd d is fine
    for n in range(5):
        for j in range(7):
            angle = n / 10000 ** ((j - j % 2) / 7)
            assert abs(table[n, j].item() - (math.sin(angle) if j % 2 == 0 else math.cos(angle))) < 1e-6


def test_offset_is_restored_and_a_constant_series_is_forecast_as_itself():
    torch.manual_seed(1)
    model = gateformer(out_index=(0, 1, 2)).double().eval()
    x = torch.randn(2, 16, 3, dtype=torch.float64)
    offset = torch.tensor([10.0, -3.0, 0.5], dtype=torch.float64)
    torch.testing.assert_close(model(x + offset).logits, model(x).logits + offset, rtol=0, atol=1e-10)
    torch.testing.assert_close(model(2 * x).logits, 2 * model(x).logits, rtol=0, atol=1e-3)
    level = torch.tensor([5.0, -7.0, 100.0], dtype=torch.float64)
    constant = model(level.expand(2, 16, 3).clone()).logits                               # std = sqrt(1e-5)
    torch.testing.assert_close(constant, level.expand(2, 5, 3), rtol=0, atol=0.05)


def test_bfloat16_statistics_and_forecasts_are_float32():
    model = gateformer(out_index=(0, 1, 2)).to(torch.bfloat16).eval()
    level = torch.tensor([300.0, -7.0, 1.0])
    x = (level + 0.01 * torch.randn(2, 16, 3)).to(torch.bfloat16)
    _, mean, std = instance_norm(x)
    assert mean.dtype == std.dtype == torch.float32
    out = model(x, x[:, :5].float())
    assert out.logits.dtype == torch.float32 and torch.isfinite(out.loss)
    torch.testing.assert_close(out.logits, mean.expand(2, 5, 3), rtol=0, atol=0.5)


def test_gate_by_hand():
    gate = Gate(3).double()
    a, b = torch.randn(2, 4, 3, dtype=torch.float64), torch.randn(2, 4, 3, dtype=torch.float64)
    z = torch.sigmoid(a @ gate.w_a.weight.T + gate.w_a.bias + b @ gate.w_b.weight.T + gate.w_b.bias)
    torch.testing.assert_close(gate(a, b), z * a + (1 - z) * b, rtol=0, atol=1e-12)


@pytest.mark.parametrize("bidirectional", [True, False])
def test_forward_by_hand(bidirectional):
    """The whole forward from the model's pieces: embeddings, flatten order (d, N), both gates, the head."""
    model = gateformer(tiny(bidirectional=bidirectional), out_index=(0, 1, 2)).double().eval()
    inputs = torch.randn(2, 16, 3, dtype=torch.float64) * 2 + 3
    mean = inputs.mean(1, keepdim=True)
    std = ((inputs - mean) ** 2).mean(1, keepdim=True).add(1e-5).sqrt()
    x = (inputs - mean) / std
    B, L, C, d, P, N = 2, 16, 3, 16, 4, 5
    g = x.transpose(1, 2) @ model.global_embed.weight.T + model.global_embed.bias          # (B, C, d)
    series = torch.cat([x, x[:, -1:].expand(B, P, C)], 1).transpose(1, 2).reshape(B * C, L + P)
    patches = torch.stack([series[:, n * P:(n + 1) * P] for n in range(N)], 1)           # (B C, N, P)
    tokens = patches @ model.patch_embed.weight.T + sinusoidal_positions(N, d).double()
    enc = model.encode(tokens)[0].reshape(B, C, N, d)
    flat = torch.stack([enc[:, :, n, k] for k in range(d) for n in range(N)], -1)        # (B, C, d N)
    t = flat @ model.flatten.weight.T + model.flatten.bias
    w1, w2 = model.gate_temporal.w_a, model.gate_temporal.w_b
    z = torch.sigmoid(g @ w1.weight.T + w1.bias + t @ w2.weight.T + w2.bias)
    e = z * g + (1 - z) * t
    c = model.variate.encode(e)[0]
    w3, w4 = model.gate_variate.w_a, model.gate_variate.w_b
    z = torch.sigmoid(e @ w3.weight.T + w3.bias + c @ w4.weight.T + w4.bias)
    h = z * e + (1 - z) * c
    y = (h @ model.head.weight.T + model.head.bias).transpose(1, 2) * std + mean
    torch.testing.assert_close(model(inputs).logits, y, rtol=0, atol=1e-10)


def test_variate_attention_sees_every_variate_and_the_temporal_encoder_follows_the_config():
    model = gateformer(tiny(bidirectional=False))
    for block in model.variate.blocks:
        assert block.mixer.config.causal is False and block.mixer.rope is None
    for block in model.blocks:
        assert block.mixer.config.causal is True and block.mixer.rope is None   # patches carry sinusoids
    roped = gateformer(tiny(mixer_options={"attn": {"rope": True}}))
    assert all(b.mixer.rope is not None and b.mixer.config.causal is False for b in roped.blocks)
    assert all(b.mixer.rope is None for b in roped.variate.blocks)


def test_parameter_count_against_the_official_layers():
    """ETTh1 script sizes; the official encoder layer is torch's, whose attention has 4 d biases more."""
    d, layers, L, H, C = 64, 1, 96, 96, 7
    config = ModelConfig(d_model=d, n_heads=4, n_layers=layers, d_ff=d, norm="layernorm", channel="mlp",
                         bidirectional=True)
    model = build_forecaster(config, ForecasterConfig(architecture="gateformer"), L, H, C, list(range(C)))
    torch_layer = nn.TransformerEncoderLayer(d, 4, dim_feedforward=d, norm_first=True, batch_first=True)
    layer = sum(p.numel() for p in torch_layer.parameters())
    official = (L * d + d) + 8 * d + (13 * d * d + d) + 4 * (d * d + d) + 2 * layers * layer + (d * H + H)
    assert official == 133_344
    assert model.num_params() == official - 2 * layers * 4 * d == 132_832


@pytest.mark.parametrize("mixer,bidirectional", [("attn", True), ("gla", True), ("mamba", False),
                                                 ("gated_attn", False)])
def test_finite_gradients_with_any_temporal_mixer(mixer, bidirectional):
    model = gateformer(tiny(mixer, bidirectional, dropout=0.1))
    model.train()
    out = model(torch.randn(3, 16, 3), torch.randn(3, 5, 2))
    out.loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values()), \
        [n for n, g in grads.items() if g is None]
    assert grads["variate.blocks.0.mixer.q_proj.weight"].abs().sum() > 0
    assert grads["gate_temporal.w_a.weight"].abs().sum() > 0


def test_loop_methods_cover_both_encoders():
    moe = {"moe": {"n_experts": 2, "top_k": 1}}
    model = gateformer(tiny(channel="moe", channel_options=moe))
    model.train()
    mixers = model.channel_mixers()
    assert [i for i, _ in mixers] == [0, 1, 2, 3]
    assert {id(ch) for _, ch in mixers[2:]} == {id(b.channel) for b in model.variate.blocks}
    out = model(torch.randn(2, 16, 3))
    assert out.aux_loss is not None and set(out.aux_losses)
    assert set(model.channel_stats()) == {"layer0", "layer1", "layer2", "layer3"}
    unused = sum(sum(p.numel() for p in ch.parameters()) - ch.active_params() for _, ch in mixers)
    assert unused > 0 and model.num_active_params() == model.num_params() - unused
    dense = gateformer()
    assert dense.state_size(16) == (sum(b.mixer.state_size(5) for b in dense.blocks)
                                    + sum(b.mixer.state_size(3) for b in dense.variate.blocks))


def test_bad_options():
    with pytest.raises(ConfigError, match=r"forecaster\.patch_len=17"):
        gateformer(head=ForecasterConfig(architecture="gateformer", patch_len=17))
    with pytest.raises(ConfigError, match=r"forecaster\.patch_len"):
        gateformer(head=ForecasterConfig(architecture="gateformer", patch_len=0))
    with pytest.raises(ConfigError, match=r"forecaster\.distil"):
        from_dict(ForecasterConfig, {"architecture": "gateformer", "distil": True}, "forecaster")
    with pytest.raises(ConfigError, match=r"forecaster\.channel_independent"):
        from_dict(ForecasterConfig, {"architecture": "gateformer", "channel_independent": False}, "forecaster")
    with pytest.raises(ConfigError, match="gateformer"):
        from_dict(ForecasterConfig, {"architecture": "gatefomer"}, "forecaster")
    with pytest.raises(ValueError, match="16 steps of 3 variates"):
        gateformer()(torch.randn(1, 16, 4))
