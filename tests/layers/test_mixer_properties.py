"""Properties particular to one mixer (the registry harness covers what all of them share)."""
import pytest
import torch
import torch.nn.functional as F

from gatelab.ops import recurrent_gla
from gatelab.registry import MIXERS


def test_gdn_without_decay_is_deltanet():
    torch.manual_seed(0)
    gdn = MIXERS.get("gdn")(16, n_heads=2, expand_v=1.0).double()
    delta = MIXERS.get("deltanet")(16, n_heads=2, use_output_gate=True).double()
    delta.load_state_dict(gdn.state_dict(), strict=False)
    with torch.no_grad():
        gdn.A_log.fill_(-float("inf"))  # exp(A_log) = 0: g = 0, no decay
    x = torch.randn(2, 20, 16, dtype=torch.float64)
    torch.testing.assert_close(gdn(x)[0], delta(x)[0], atol=1e-12, rtol=1e-12)
    assert not torch.allclose(MIXERS.get("gdn")(16, n_heads=2, expand_v=1.0).double()(x)[0], delta(x)[0])


@pytest.mark.parametrize("bounded", [False, True])
def test_hgrn2_is_flas_hgrn2_gla_with_tied_input_gate_swish_query_and_lower_bound(bounded):
    """flash-linear-attention's HGRN2Attention: f = lb + (1 - lb) sigmoid(x W_f), k = 1 - f, q = swish(x W_q),
    v = x W_i, unscaled GLA, RMSNorm over all channels, o_proj. Written in probability space here."""
    torch.manual_seed(0)
    layer = MIXERS.get("hgrn2")(16, n_heads=2).double()
    torch.nn.init.normal_(layer.o_norm.weight)
    x = torch.randn(2, 20, 16, dtype=torch.float64)
    B, T, H, E = 2, 20, 2, 8
    lb = torch.rand(16, dtype=torch.float64) if bounded else torch.zeros(16, dtype=torch.float64)
    f = (lb + (1 - lb) * torch.sigmoid(layer.f_proj(x))).view(B, T, H, E)
    q = F.silu(layer.q_proj(x)).view(B, T, H, E)
    v = layer.i_proj(x).view(B, T, H, 8)
    o, _ = recurrent_gla(q, 1 - f, v, g=f.log(), scale=1.0)
    o = o.flatten(2)
    expected = layer.o_proj(o * torch.rsqrt(o.square().mean(-1, keepdim=True) + 1e-5) * layer.o_norm.weight)
    y, _ = layer(x, lower_bound=lb) if bounded else layer(x)
    torch.testing.assert_close(y, expected, atol=1e-12, rtol=1e-12)
    assert layer.lower_bound_dim == 16 and MIXERS.get("hgrn2")(16, n_heads=2, lower_bound=False).lower_bound_dim == 0


def test_hgrn2_lower_bound_continues_across_calls_and_steps():
    torch.manual_seed(0)
    layer = MIXERS.get("hgrn2")(16, n_heads=2, chunk_size=4).double()
    x = torch.randn(2, 9, 16, dtype=torch.float64)
    lb = torch.rand(16, dtype=torch.float64)
    with torch.no_grad():
        y, _ = layer(x, lower_bound=lb)
        y1, s = layer(x[:, :4], lower_bound=lb)
        y2, _ = layer.step(x[:, 4:], s, lower_bound=lb)
    torch.testing.assert_close(torch.cat([y1, y2], 1), y, atol=1e-10, rtol=1e-10)
    assert not torch.allclose(y, layer(x)[0])



def test_hgrn2_bounded_forget_gate_never_rounds_above_zero_in_float32():
    """With a lower bound near 1 and a saturated sigmoid, ``log(lb + (1 - lb) f)`` is 0 in exact arithmetic and
    rounds just above 0 in float32; the layer clamps it, so the op receives no growth factor."""
    layer = MIXERS.get("hgrn2")(8, n_heads=2)
    x = torch.linspace(-40, 40, 4001).view(1, -1, 1).expand(1, 4001, 8)                  # (1, T, d_model)
    lb = torch.full((8,), 0.99999)
    with torch.no_grad():
        layer.f_proj.weight.copy_(torch.eye(8) * 0.5)
        unclamped = torch.logaddexp(lb.log(), torch.log1p(-lb) + F.logsigmoid(layer.f_proj(x)))
        _, kw, _, _ = layer.features(x, None, 0, lower_bound=lb)
    assert unclamped.max() > 0                                                            # the rounding is there
    assert kw["g"].max() <= 0 and kw["g"].min() < 0

def test_mamba2_groups_share_B_and_C_among_consecutive_heads():
    """Each head h reads B and C of group h // (H / G), and the gated RMSNorm works per group (mamba_ssm's ngroups
    and group_size): checked against a direct per-head recurrence."""
    torch.manual_seed(0)
    H, G, N, d = 4, 2, 3, 8
    layer = MIXERS.get("mamba2")(d, n_heads=H, n_groups=G, d_state=N, expand=2, chunk_size=4).double()
    torch.nn.init.normal_(layer.norm.weight)
    E, P = 2 * d, 2 * d // H
    assert layer.in_proj.out_features == 2 * E + 2 * G * N + H and layer.conv.d_model == E + 2 * G * N
    x = torch.randn(2, 7, d, dtype=torch.float64)
    z, xBC, dt = layer.in_proj(x).split([E, E + 2 * G * N, H], dim=-1)
    xBC = F.silu(layer.conv(xBC)[0])
    xs, Bs, Cs = xBC.split([E, G * N, G * N], dim=-1)
    dt = F.softplus(dt + layer.dt_bias)                                                   # (B, T, H)
    S = torch.zeros(2, H, N, P, dtype=torch.float64)
    ys = []
    for t in range(7):
        y_t = []
        for h in range(H):
            grp = slice(h // (H // G) * N, (h // (H // G) + 1) * N)
            x_th = xs[:, t, h * P:(h + 1) * P]                                            # (B, P)
            decay = torch.exp(-layer.A_log[h].exp() * dt[:, t, h])[:, None, None]
            S[:, h] = decay * S[:, h] + Bs[:, t, grp, None] * (dt[:, t, h, None] * x_th)[:, None, :]
            y_t.append(torch.einsum("bn,bnp->bp", Cs[:, t, grp], S[:, h]) + layer.D[h] * x_th)
        ys.append(torch.cat(y_t, -1))
    y = torch.stack(ys, 1) * F.silu(z)                                                   # (B, T, E)
    y = torch.cat([c * torch.rsqrt(c.square().mean(-1, keepdim=True) + 1e-5) for c in y.chunk(G, -1)], -1)
    expected = layer.out_proj(y * layer.norm.weight)
    torch.testing.assert_close(layer(x)[0], expected, atol=1e-12, rtol=1e-12)
    assert sum(p.numel() for p in layer.parameters()) == layer.expected_num_params()


def test_gam_memory_path_reads_no_other_token():
    """GAM's output at t depends on earlier tokens only through the convolution window (its documented
    'global memory' is a fixed, learned bank)."""
    torch.manual_seed(0)
    gam = MIXERS.get("gam")(16, kernel_size=3).double()
    x = torch.randn(1, 30, 16, dtype=torch.float64)
    x2 = x.clone()
    x2[:, :25] = torch.randn(1, 25, 16, dtype=torch.float64)  # change everything outside t=29's window (27..29)
    torch.testing.assert_close(gam(x)[0][:, 27:], gam(x2)[0][:, 27:])
    assert not torch.allclose(gam(x)[0][:, 25:27], gam(x2)[0][:, 25:27])


def test_sliding_window_sees_only_the_window_and_keeps_a_bounded_cache():
    torch.manual_seed(0)
    swa = MIXERS.get("swa")(16, n_heads=2, window=5).double()
    x = torch.randn(1, 30, 16, dtype=torch.float64)
    x2 = x.clone()
    x2[:, :25] = torch.randn(1, 25, 16, dtype=torch.float64)
    y, cache = swa(x)
    torch.testing.assert_close(y[:, 29], swa(x2)[0][:, 29])
    assert cache.k.shape[1] == 4 and cache.offset == 30 and swa.state_size(30) == 2 * 4 * 16


def test_retnet_decays_are_fixed_per_head():
    layer = MIXERS.get("retnet")(16, n_heads=4)
    torch.testing.assert_close(layer.log_decay.exp(), 1 - 2.0 ** (-5.0 - torch.arange(4.0)))
    assert not any("decay" in n for n, _ in layer.named_parameters())


def test_liger_adds_no_parameters_and_loads_an_attention_checkpoint():
    torch.manual_seed(0)
    attn = MIXERS.get("attn")(16, n_heads=2).double()
    liger = MIXERS.get("liger")(16, n_heads=2, window=4).double()
    liger.load_state_dict(attn.state_dict())  # strict: the same parameter names and shapes
    x = torch.randn(1, 12, 16, dtype=torch.float64)
    liger.config.mix = 1.0  # all weight on the sliding window: equals sliding-window attention
    swa = MIXERS.get("swa")(16, n_heads=2, window=4).double()
    swa.load_state_dict(attn.state_dict())
    torch.testing.assert_close(liger(x)[0], swa(x)[0])
