import pytest
import torch

from gatelab.ops import clip_gamma_for_length, clipped_softmax, sdpa_attention, softmax_attention


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("Tq,Tk", [(9, 9), (1, 9), (4, 9)])
@pytest.mark.parametrize("H,Hkv", [(4, 4), (4, 2), (4, 1)])
def test_sdpa_matches_reference_float64(causal, Tq, Tk, H, Hkv):
    q = torch.randn(2, Tq, H, 8, dtype=torch.float64, requires_grad=True)
    k = torch.randn(2, Tk, Hkv, 8, dtype=torch.float64, requires_grad=True)
    v = torch.randn(2, Tk, Hkv, 6, dtype=torch.float64, requires_grad=True)
    o_ref, probs = softmax_attention(q, k, v, causal=causal)
    grads_ref = torch.autograd.grad(o_ref.square().sum(), (q, k, v))
    o, none = sdpa_attention(q, k, v, causal=causal)
    grads = torch.autograd.grad(o.square().sum(), (q, k, v))
    assert none is None
    torch.testing.assert_close(o, o_ref, atol=1e-10, rtol=1e-10)
    for a, b in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(probs.sum(-1), torch.ones_like(probs.sum(-1)))


def test_causal_queries_see_only_the_past_with_a_cache():
    q = torch.randn(1, 3, 1, 4, dtype=torch.float64)
    k = torch.randn(1, 5, 1, 4, dtype=torch.float64)
    v = torch.randn(1, 5, 1, 4, dtype=torch.float64)
    _, probs = softmax_attention(q, k, v)
    assert (probs[0, 0, 0, 3:] == 0).all() and (probs[0, 0, 1, 4:] == 0).all() and (probs[0, 0, 2] > 0).all()


def test_clipped_softmax_defaults_equal_softmax():
    x = torch.randn(3, 7)
    torch.testing.assert_close(clipped_softmax(x), x.softmax(-1))


def test_clipped_softmax_exact_zeros_and_limits():
    x = torch.tensor([[4.0, 0.0, -1.0, -6.0]], requires_grad=True)
    gamma, zeta = -0.05, 1.0
    p = x.softmax(-1)
    y = clipped_softmax(x, gamma=gamma, zeta=zeta)
    threshold = -gamma / (zeta - gamma)
    assert ((y == 0) == (p < threshold)).all() and (y == 0).any()
    assert (y >= 0).all() and (y <= 1).all() and y.sum() <= 1
    torch.testing.assert_close(y[p >= threshold], ((zeta - gamma) * p + gamma)[p >= threshold])
    y[0, -1].backward()
    assert x.grad.abs().sum() == 0  # a clipped probability passes no gradient


def test_clipped_softmax_stretch_saturates_at_one():
    x = torch.tensor([[8.0, 0.0, 0.0]])
    y = clipped_softmax(x, gamma=0.0, zeta=1.5)
    assert y[0, 0] == 1.0


def test_clip_gamma_for_length_and_bad_values():
    assert clip_gamma_for_length(3.2, 128) == pytest.approx(-0.025)
    with pytest.raises(ValueError, match="gamma <= 0"):
        clipped_softmax(torch.zeros(2), gamma=0.1)
    with pytest.raises(ValueError, match="query heads"):
        sdpa_attention(torch.zeros(1, 2, 3, 4), torch.zeros(1, 2, 2, 4), torch.zeros(1, 2, 2, 4))
