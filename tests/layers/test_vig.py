"""ViG's bidirectional GLA (``vig``)."""
import pytest
import torch
import torch.nn.functional as F

from gatelab.config import ConfigError
from gatelab.ops import recurrent_gla
from gatelab.registry import MIXERS

D, H = 16, 2


def vig(**options):
    torch.manual_seed(0)
    return MIXERS.get("vig")(D, n_heads=H, **options).double()


def reverse_recurrence(q, k, v, g):
    """``S_t = diag(exp(g_t)) S_{t+1} + k_t^T v_t``, ``o_t = q_t S_t / sqrt(K)``, from t = T-1 down to 0."""
    B, T, Hh, K = q.shape
    S = q.new_zeros(B, Hh, K, v.shape[-1])                                                 # (B, H, K, V)
    out = [None] * T
    for t in reversed(range(T)):
        S = g[:, t].exp().unsqueeze(-1) * S + k[:, t].unsqueeze(-1) * v[:, t].unsqueeze(-2)
        out[t] = torch.einsum("bhk,bhkv->bhv", q[:, t] * K**-0.5, S)
    return torch.stack(out, 1)                                                              # (B, T, H, V)


def random_features(B, T, K=4, V=3, strength=1.0, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q, k, gf, gb = (torch.randn(B, T, H, K, generator=gen, dtype=torch.float64) for _ in range(4))
    v = torch.randn(B, T, H, V, generator=gen, dtype=torch.float64)
    return q, k, v, F.logsigmoid(gf) / strength, F.logsigmoid(gb) / strength


def test_output_depends_on_future_and_past_tokens_beyond_the_convolution():
    """Tokens 0 and 15 of a 4x4 map are not neighbours: each reaches the other only through a scan."""
    mixer = vig()
    x = torch.randn(1, 16, D, dtype=torch.float64, requires_grad=True)
    y, state = mixer(x)
    assert state is None and y.shape == x.shape
    (grad,) = torch.autograd.grad(y[:, 0].sum(), x, retain_graph=True)
    assert grad[:, 15].abs().max() > 0
    (grad,) = torch.autograd.grad(y[:, 15].sum(), x)
    assert grad[:, 0].abs().max() > 0


@pytest.mark.parametrize("padded", [False, True])
def test_reverse_scan_is_the_forward_scan_of_the_flipped_sequence(padded):
    mixer = vig(mode="recurrent")
    q, k, v, gf, gb = random_features(2, 9)
    lengths = torch.tensor([9, 4]) if padded else None
    o_fwd, o_bwd = mixer.scan(q, k, v, gf, gb, lengths)
    torch.testing.assert_close(o_fwd, recurrent_gla(q, k, v, g=gf)[0], atol=1e-12, rtol=1e-12)
    for b, n in enumerate([9, 4] if padded else [9, 9]):
        qb, kb, vb, gbb = (x[b:b + 1, :n] for x in (q, k, v, gb))
        flipped = recurrent_gla(qb.flip(1), kb.flip(1), vb.flip(1), g=gbb.flip(1))[0].flip(1)
        torch.testing.assert_close(o_bwd[b:b + 1, :n], flipped, atol=1e-12, rtol=1e-12)
        torch.testing.assert_close(o_bwd[b:b + 1, :n], reverse_recurrence(qb, kb, vb, gbb), atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("T", [1, 63, 100])
@pytest.mark.parametrize("chunk_size", [1, 16, 64])
@pytest.mark.parametrize("strength", [0.1, 1.0, 10.0])
def test_chunked_and_recurrent_scans_agree_in_both_directions(T, chunk_size, strength):
    lengths = torch.tensor([T, max(T // 2, 1)])
    inputs = [x.requires_grad_() for x in random_features(2, T, strength=strength, seed=T)]
    results = []
    for mode in ("recurrent", "chunk"):
        outputs = vig(mode=mode, chunk_size=chunk_size).scan(*inputs, lengths)
        loss = sum((o * torch.randn(o.shape, generator=torch.Generator().manual_seed(i), dtype=o.dtype)).sum()
                   for i, o in enumerate(outputs))
        results.append((outputs, torch.autograd.grad(loss, inputs)))
    (ref_out, ref_grad), (out, grad) = results
    for a, b in zip(ref_out + ref_grad, out + grad, strict=True):
        torch.testing.assert_close(b, a, atol=1e-10, rtol=1e-10)


def test_chunked_and_recurrent_layers_agree():
    x = torch.randn(2, 100, D, dtype=torch.float64, requires_grad=True)
    chunked, recurrent = vig(chunk_size=16), vig(mode="recurrent")
    y1, y2 = chunked(x)[0], recurrent(x)[0]
    torch.testing.assert_close(y1, y2, atol=1e-10, rtol=1e-10)
    g1 = torch.autograd.grad(y1.square().sum(), [x, *chunked.parameters()])
    g2 = torch.autograd.grad(y2.square().sum(), [x, *recurrent.parameters()])
    for a, b in zip(g1, g2, strict=True):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("options", [{}, dict(conv_activation=False, conv_bias=True, output_activation=True)])
@pytest.mark.parametrize("lengths", [None, [16, 7]])
def test_layer_matches_a_readable_reference(options, lengths):
    """Depthwise 3x3 conv on the map (pads read as zeros), shared q/k/v, a decay gate per direction, the mean of
    the two scans over each sequence's real tokens only, and the locality gate mixing the normalised global and
    local features (hustvl/ViG's GatedLinearAttention)."""
    mixer = vig(**options)
    for p in (mixer.o_norm.weight, mixer.l_norm.weight, mixer.g_proj.bias, mixer.gk_proj[1].bias):
        torch.nn.init.normal_(p)
    B, T, K = 2, 16, mixer.key_dim
    x = torch.randn(B, T, D, dtype=torch.float64)
    n = lengths or [T, T]
    x_real = x.clone()
    x_real[1, n[1]:] = 0
    u = F.conv2d(x_real.transpose(1, 2).reshape(B, D, 4, 4), mixer.conv.weight, mixer.conv.bias, padding=1,
                 groups=D)
    u = u.flatten(2).transpose(1, 2)                                                       # (B, T, D)
    u = u if options else F.silu(u)
    q, k, v = (t.reshape(B, T, H, -1) for t in mixer.qkv_proj(u).split([K, K, D], -1))
    low = u @ mixer.gk_proj[0].weight.T
    w_fwd, w_bwd = mixer.gk_proj[1].weight.chunk(2, 0)
    b_fwd, b_bwd = mixer.gk_proj[1].bias.chunk(2, 0)
    g_fwd = (F.logsigmoid(low @ w_fwd.T + b_fwd) / 16).reshape(B, T, H, -1)
    g_bwd = (F.logsigmoid(low @ w_bwd.T + b_bwd) / 16).reshape(B, T, H, -1)

    def rms(z, w):
        return z * torch.rsqrt(z.square().mean(-1, keepdim=True) + 1e-6) * w

    y = mixer(x, lengths=None if lengths is None else torch.tensor(lengths))[0]
    for b in range(B):
        real = slice(b, b + 1), slice(0, n[b])
        o = (recurrent_gla(q[real], k[real], v[real], g=g_fwd[real])[0]
             + reverse_recurrence(q[real], k[real], v[real], g_bwd[real])) / 2             # (1, n, H, D/H)
        g = torch.sigmoid(mixer.g_proj(u[real])).reshape(1, n[b], H, -1)
        mix = g * rms(o, mixer.o_norm.weight) + (1 - g) * rms(u[real].reshape(1, n[b], H, -1), mixer.l_norm.weight)
        mix = F.silu(mix) if options else mix
        torch.testing.assert_close(y[real], mixer.o_proj(mix.flatten(2)), atol=1e-12, rtol=1e-12)


def test_padding_never_changes_real_outputs():
    mixer = vig(chunk_size=4)
    x = torch.randn(2, 16, D, dtype=torch.float64)
    lengths = torch.tensor([16, 7])
    y = mixer(x, lengths=lengths)[0]
    x2 = x.clone()
    x2[1, 7:] = 100 * torch.randn(9, D, dtype=torch.float64)
    torch.testing.assert_close(mixer(x2, lengths=lengths)[0][1, :7], y[1, :7], atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(y[0], mixer(x[:1])[0][0], atol=1e-12, rtol=1e-12)
    assert not torch.allclose(mixer(x)[0][1, :7], y[1, :7])       # without lengths the pads do reach them
    x2[1, 7:] = float("nan")
    torch.testing.assert_close(mixer(x2, lengths=lengths)[0][1, :7], y[1, :7], atol=1e-12, rtol=1e-12)


def test_documented_parameter_count():
    d, heads, r = 24, 3, 5
    mixer = MIXERS.get("vig")(d, n_heads=heads, gate_low_rank_dim=r, expand_k=1.0, conv_bias=True)
    K = d
    formula = 10 * d + d * (2 * K + d) + d * r + 2 * r * K + 2 * K + d * d + d + 2 * d // heads + d * d
    assert sum(p.numel() for p in mixer.parameters()) == mixer.expected_num_params() == formula
    assert mixer.gk_proj[1].out_features == 2 * K and mixer.qkv_proj.out_features == 2 * K + d
    assert mixer.directions == "bidirectional" and mixer.state_size(10) == 2 * heads * (K // heads) * (d // heads)


@pytest.mark.parametrize("options,match", [
    (dict(grid=-1), "grid"),
    (dict(n_heads=3), "multiple of n_heads"),
    (dict(expand_k=0.1), "key dim"),
    (dict(gate_logit_normalizer=0.0), "gate_logit_normalizer"),
    (dict(mode="fused"), "'fused' is not allowed"),
    (dict(expand_v=2.0), "unknown config key.*expand_v"),
])
def test_bad_options_fail_at_construction(options, match):
    with pytest.raises(ConfigError, match=match):
        MIXERS.get("vig")(D, **{"n_heads": H, **options})


def test_token_map_that_does_not_fit_fails_at_forward_naming_grid_and_length():
    with pytest.raises(ConfigError, match=r"vig\.grid=0 .*perfect square.*T=11"):
        vig()(torch.randn(1, 11, D, dtype=torch.float64))
    with pytest.raises(ConfigError, match=r"vig\.grid=3 .*T must be 9; got T=16"):
        vig(grid=3)(torch.randn(1, 16, D, dtype=torch.float64))
    assert vig(grid=3)(torch.randn(1, 9, D, dtype=torch.float64))[0].shape == (1, 9, D)


def test_no_decoding_state():
    mixer = vig()
    x = torch.randn(1, 4, D, dtype=torch.float64)
    assert mixer.init_state(1) is None
    for call in (lambda: mixer(x, state=object()), lambda: mixer.step(x, None)):
        with pytest.raises(ValueError, match="bidirectional"):
            call()
