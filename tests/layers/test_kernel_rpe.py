"""kernel_rpe: with a zero bias it is Performer's linear attention, with many features it approaches softmax
attention with the same relative bias, the bias weights tokens by distance (clipped), the random features are
fixed or redrawn, and bad options fail at construction."""
import math

import pytest
import torch

from gatelab.config import ConfigError
from gatelab.layers.token.random_features import gaussian_orthogonal, positive_features
from gatelab.registry import MIXERS


def build(**opts):
    torch.manual_seed(0)
    return MIXERS.get("kernel_rpe")(16, n_heads=2, **opts).double()


def heads(mixer, x):
    B, T, _ = x.shape
    q, k, v = (p(x).view(B, T, 2, 8) for p in (mixer.q_proj, mixer.k_proj, mixer.v_proj))
    return q * 8 ** -0.25, k * 8 ** -0.25, v


@pytest.mark.parametrize("mode", ["fft", "quadratic"])
def test_zero_bias_is_performer_linear_attention(mode):
    mixer = build(mode=mode)
    x = torch.randn(2, 30, 16, dtype=torch.float64)
    q, k, v = heads(mixer, x)
    phi_q = positive_features(q, mixer.projection, 1e-6, is_query=True)
    phi_k = positive_features(k, mixer.projection, 1e-6, is_query=False)
    num = torch.einsum("bthm,bthmv->bthv", phi_q, torch.einsum("bthm,bthv->bthmv", phi_k, v).cumsum(1))
    den = torch.einsum("bthm,bthm->bth", phi_q, phi_k.cumsum(1))
    expected = mixer.o_proj((num / den[..., None]).flatten(2))
    torch.testing.assert_close(mixer(x)[0], expected, atol=1e-10, rtol=1e-10)


def test_many_features_approach_softmax_attention_with_the_same_relative_bias():
    """The kernel's estimate phi(q).phi(k) -> exp(q.k / sqrt(D)): with 8192 features the layer is close to
    softmax(q.k / sqrt(D) + b_{i-j}) attention (causal)."""
    mixer = build(n_features=8192)
    with torch.no_grad():
        mixer.rel_bias.copy_(torch.randn(2, 513, dtype=torch.float64))
    x = torch.randn(1, 12, 16, dtype=torch.float64) * 0.5
    q, k, v = heads(mixer, x)
    lag = torch.arange(12)[:, None] - torch.arange(12)[None, :]
    scores = torch.einsum("bihd,bjhd->bhij", q, k) + mixer.rel_bias[:, lag.clamp(min=0)]
    attn = torch.softmax(scores.masked_fill(lag < 0, float("-inf")), -1)
    expected = mixer.o_proj(torch.einsum("bhij,bjhd->bihd", attn, v).flatten(2))
    y = mixer(x)[0].detach()
    assert (y - expected).norm() / expected.norm() < 0.05


def test_the_bias_weights_by_distance_and_clips_at_max_distance():
    """A bias of -60 at lags >= max_distance = 2 (the clipped bucket) leaves each token reading only itself and
    its predecessor: changing tokens two or more back changes nothing (to e^-60)."""
    mixer = build(max_distance=2)
    with torch.no_grad():
        mixer.rel_bias[:, 2] = -60.0
    assert torch.equal(mixer.lag_bias(6)[:, 2:], mixer.rel_bias[:, 2:].expand(2, 4))
    x = torch.randn(1, 10, 16, dtype=torch.float64)
    other = x.clone()
    other[:, :7] = torch.randn(1, 7, 16, dtype=torch.float64)
    with torch.no_grad():
        y, y_other = mixer(x)[0], mixer(other)[0]
    torch.testing.assert_close(y[:, 8:], y_other[:, 8:], atol=1e-12, rtol=1e-12)
    assert not torch.allclose(y[:, 7], y_other[:, 7])


@pytest.mark.parametrize("orthogonal", [True, False])
def test_positive_features_estimate_the_softmax_kernel_and_are_positive(orthogonal):
    gen = torch.Generator().manual_seed(0)
    w = gaussian_orthogonal(20000, 4, orthogonal, generator=gen)
    x, y = torch.randn(2, 1, 1, 1, 4, generator=gen, dtype=torch.float64) * 0.5
    phi_x = positive_features(x, w, 0.0, is_query=False)
    phi_y = positive_features(y, w, 0.0, is_query=False)
    assert (phi_x > 0).all()
    estimate = (phi_x * phi_y).sum()
    assert abs(estimate / torch.exp((x * y).sum()) - 1) < 0.03
    shifted = positive_features(x, w, 0.0, is_query=True)                  # a per-query factor only
    ratio = shifted / phi_x
    torch.testing.assert_close(ratio, ratio.flatten()[0].expand_as(ratio))


def test_large_keys_aligned_with_a_feature_stay_finite_in_float32():
    """A key's exponent ``w . k - |k|^2 / 2`` peaks at ``|w|^2 / 2`` for k = w: 200 here, beyond float32's exp;
    capped at 60."""
    w = torch.zeros(3, 8)
    w[0, 0] = 20.0
    features = positive_features(w[:1].view(1, 1, 1, 8), w, 1e-6, is_query=False)
    assert torch.isfinite(features).all() and features.max() == (math.exp(60) + 1e-6) / math.sqrt(3)
    mixer = MIXERS.get("kernel_rpe")(16, n_heads=2, n_features=3, orthogonal=False, mode="quadratic")
    with torch.no_grad():
        mixer.projection.copy_(w)
        mixer.k_proj.weight.copy_(torch.eye(16) * 8 ** 0.25)              # k = x per head after the D^-1/4 scale
    x = torch.randn(1, 6, 16)
    x[0, 2, :8] = w[0]
    y, _ = mixer(x)
    assert torch.isfinite(y).all()


def test_orthogonal_features_are_orthogonal_within_a_block():
    w = gaussian_orthogonal(10, 4, generator=torch.Generator().manual_seed(0))
    block = w[:4] / w[:4].norm(dim=-1, keepdim=True)
    torch.testing.assert_close(block @ block.T, torch.eye(4), atol=1e-5, rtol=0)
    assert w.shape == (10, 4)


def test_features_are_fixed_by_seed_and_redrawn_only_in_training():
    a, b = build(feature_seed=3), build(feature_seed=3)
    assert torch.equal(a.projection, b.projection)
    assert not torch.equal(a.projection, build(feature_seed=4).projection)
    x = torch.randn(1, 5, 16, dtype=torch.float64)
    fixed = a.projection.clone()
    a(x), a(x)
    assert torch.equal(a.projection, fixed)                                # feature_redraw=0: never
    redrawn = build(feature_redraw=2, feature_seed=3)
    seen = []
    for _ in range(5):
        redrawn(x)
        seen.append(redrawn.projection.clone())
    assert torch.equal(seen[0], fixed) and torch.equal(seen[1], fixed)    # the seeded features serve 2 calls
    assert not torch.equal(seen[1], seen[2]) and torch.equal(seen[2], seen[3]) and not torch.equal(seen[3], seen[4])
    redrawn.eval()
    redrawn(x)
    assert torch.equal(redrawn.projection, seen[4])
    assert {"projection", "calls_since_redraw"} <= set(redrawn.state_dict())


def test_a_model_loaded_from_its_state_dict_redraws_as_the_saved_one():
    x = torch.randn(1, 5, 16, dtype=torch.float64)
    saved = build(feature_redraw=3)
    for _ in range(4):
        saved(x)
    resumed = build(feature_redraw=3, feature_seed=9)
    resumed.load_state_dict(saved.state_dict())
    for _ in range(4):
        torch.manual_seed(5)
        a = saved(x)[0]
        torch.manual_seed(5)
        torch.testing.assert_close(resumed(x)[0], a, atol=0, rtol=0)
        assert torch.equal(resumed.projection, saved.projection)


def test_the_quadratic_mode_equals_the_fft_one_without_an_fft(monkeypatch):
    fft, quadratic = build(fft_block=4, mode="fft"), build(mode="quadratic")
    with torch.no_grad():
        fft.rel_bias.normal_()
        quadratic.rel_bias.copy_(fft.rel_bias)
    x = torch.randn(2, 37, 16, dtype=torch.float64)
    expected = fft(x)[0]
    monkeypatch.setattr(torch.fft, "rfft", None)                            # any FFT would fail
    torch.testing.assert_close(quadratic(x)[0], expected, atol=1e-10, rtol=1e-10)
    with pytest.raises(TypeError):
        fft(x)
    assert build().config.mode == "quadratic"


def test_defaults_and_state_that_grows_with_the_sequence():
    mixer = build()
    assert mixer.config.n_features == int(8 * math.log(8))
    assert mixer.state_size(128) == 2 * mixer.state_size(64) == 2 * 64 * 2 * (mixer.config.n_features + 8)
    _, cache = mixer(torch.randn(1, 7, 16, dtype=torch.float64))
    assert cache.k.shape == (1, 7, 2, mixer.config.n_features) and cache.offset == 7


@pytest.mark.parametrize("opts,match", [
    (dict(d_model=0), "d_model"), (dict(n_heads=0), "n_heads"), (dict(head_dim=0), "head_dim"),
    (dict(n_features=0), "n_features"), (dict(feature_redraw=-1), "feature_redraw"),
    (dict(feature_seed=-1), "feature_seed"), (dict(feature_eps=0.0), "feature_eps"),
    (dict(max_distance=0), "max_distance"), (dict(fft_block=0), "fft_block"),
    (dict(fft_block=1 << 17), "fft_block"),
    (dict(fft_block=48, mode="fft"), "fft_block=48 is not supported.*power of two"),
    (dict(mode="quadratic", fft_block=32), "fft_block=32 has no effect with mode='quadratic'"),
    (dict(mode="dense"), "mode"), (dict(d_model=30, n_heads=4), "not divisible"),
    (dict(kernel="relu"), "unknown config key.*kernel"),
])
def test_bad_options_fail_at_construction(opts, match):
    with pytest.raises(ConfigError, match=match):
        MIXERS.get("kernel_rpe")(**{"d_model": 16, **opts})


@pytest.mark.parametrize("mode", ["fft", "quadratic"])
def test_an_empty_sequence_gives_an_empty_output_and_keeps_the_cache(mode):
    mixer = build(mode=mode)
    y, cache = mixer(torch.zeros(2, 0, 16, dtype=torch.float64))
    assert y.shape == (2, 0, 16) and cache.length == 0
    x = torch.randn(2, 5, 16, dtype=torch.float64)
    with torch.no_grad():
        _, after = mixer(x)
        y, kept = mixer(x[:, :0], after)
    assert y.shape == (2, 0, 16) and kept.length == 5
