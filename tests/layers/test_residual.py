"""Residual connections: the registry harness, GTrXL's gates against their formulas and at initialisation, and the
ladder wiring against a hand-computed two-block model."""
import pytest
import torch
import torch.nn.functional as F

from gatelab.models import DecoderLM, ModelConfig
from gatelab.registry import RESIDUALS

D = 8


def build(key: str, **options):
    torch.manual_seed(0)
    return RESIDUALS.get(key)(D, **options).double()


@pytest.mark.parametrize("key", RESIDUALS.names())
def test_every_residual_is_position_wise_with_finite_gradients_and_its_documented_parameters(key):
    layer = build(key)
    x = torch.randn(2, 5, D, dtype=torch.float64, requires_grad=True)
    y = torch.randn(2, 5, D, dtype=torch.float64, requires_grad=True)
    out = layer(x, y)
    assert out.shape == x.shape and out.dtype == torch.float64
    out[:, 2].sum().backward()
    for t in (0, 1, 3, 4):
        assert x.grad[:, t].abs().max() == 0 and y.grad[:, t].abs().max() == 0
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in layer.parameters())
    assert sum(p.numel() for p in layer.parameters()) == layer.expected_num_params()
    assert layer.description and layer.paper


def test_gtrxl_gates_follow_their_formulas():
    x, y = torch.randn(3, D, dtype=torch.float64), torch.randn(3, D, dtype=torch.float64)
    r, b = F.relu(y), 2.0
    g = build("gtrxl_input")
    torch.testing.assert_close(g(x, y), torch.sigmoid(x @ g.proj[0].weight.T) * x + r)
    g = build("gtrxl_output")
    torch.testing.assert_close(g(x, y), x + torch.sigmoid(x @ g.proj[0].weight.T - b) * r)
    g = build("gtrxl_highway")
    c = torch.sigmoid(x @ g.proj[0].weight.T + b)
    torch.testing.assert_close(g(x, y), c * x + (1 - c) * r)
    g = build("gtrxl_sigmoid_tanh", relu=False)
    w, u = g.proj[0].weight.T, g.proj[1].weight.T
    torch.testing.assert_close(g(x, y), x + torch.sigmoid(y @ w - b) * torch.tanh(y @ u))
    g = build("gtrxl_gru", bias=1.5)
    w_r, u_r, w_z, u_z, w_g, u_g = (p.weight.T for p in g.proj)
    rr = torch.sigmoid(r @ w_r + x @ u_r)
    z = torch.sigmoid(r @ w_z + x @ u_z - 1.5)
    h = torch.tanh(r @ w_g + (rr * x) @ u_g)
    torch.testing.assert_close(g(x, y), (1 - z) * x + z * h)


@pytest.mark.parametrize("bias", [2.0, 6.0, 12.0])
def test_the_gru_gate_starts_near_the_identity_map_within_its_bias(bias):
    """At initialisation the update gate is about sigmoid(-b_g), so the output moves from the stream by at most
    that fraction of |x| + 1 (|tanh| <= 1): GTrXL's near-identity start, tighter as the bias grows."""
    g = build("gtrxl_gru", bias=bias)
    x, y = torch.randn(64, D, dtype=torch.float64), torch.randn(64, D, dtype=torch.float64)
    _, _, w_z, u_z, _, _ = g.proj
    z = torch.sigmoid(w_z(F.relu(y)) + u_z(x) - bias)
    assert ((g(x, y) - x).abs() <= z * (x.abs() + 1) + 1e-12).all()
    assert z.mean() < 2 * torch.sigmoid(torch.tensor(-bias + 0.0)) + 0.1
    if bias >= 12:
        torch.testing.assert_close(g(x, y), x, atol=1e-3, rtol=0)


def test_ladder_wiring_matches_a_hand_computed_two_block_model():
    """r0 = emb; a0 = M0(N(r0)); m0 = F0(N(r0)); a1 = M1(N(r0 + a0)); m1 = F1(N(r0 + a0 + m0));
    out = head(norm(r0 + a0 + m0 + a1 + m1)): each module reads every earlier output but the one just before it."""
    torch.manual_seed(0)
    model = DecoderLM(ModelConfig(vocab_size=30, d_model=D, n_layers=2, n_heads=2, mixer="gla,attn",
                                  residual="ladder")).double().eval()
    ids = torch.randint(0, 30, (2, 6))
    b0, b1 = model.blocks
    r0 = model.embed(ids)
    a0 = b0.mixer(b0.mixer_norm(r0))[0]
    m0 = b0.channel(b0.channel_norm(r0))
    a1 = b1.mixer(b1.mixer_norm(r0 + a0))[0]
    m1 = b1.channel(b1.channel_norm(r0 + a0 + m0))
    expected = model.head(model.norm(r0 + a0 + m0 + a1 + m1))
    torch.testing.assert_close(model(ids).logits, expected, atol=1e-12, rtol=1e-12)
    plain = DecoderLM(ModelConfig(vocab_size=30, d_model=D, n_layers=2, n_heads=2, mixer="gla,attn")).double().eval()
    plain.load_state_dict(model.state_dict())
    assert not torch.allclose(plain(ids).logits, expected)
