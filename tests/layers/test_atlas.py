"""ATLAS as a layer: the polynomial feature map, chunk_size as the paper's approximation of the per-token rule,
the state it holds, and bad options named at construction."""
import math

import pytest
import torch

from gatelab.config import ConfigError
from gatelab.layers.token._polynomial import PolynomialFeatures, feature_dim
from gatelab.layers.token.atlas import AtlasConfig
from gatelab.registry import MIXERS
from tests.utils import values_outside


@pytest.mark.parametrize("degree", [1, 2, 3])
def test_polynomial_features_are_the_monomials_with_a_kernel_per_degree(degree):
    """``phi(x) . phi(y) = sum_n a_n^2 (x . y)^n``: the kernel of all monomials of degree <= p, starting as the
    Taylor expansion of exp(x . y); C(d + p, p) features, the degree-1 block first."""
    phi = PolynomialFeatures(5, degree).double()
    with torch.no_grad():
        phi.coeffs.mul_(torch.linspace(0.5, 1.5, degree + 1, dtype=torch.float64))
    x, y = torch.randn(2, 7, 5, dtype=torch.float64)
    fx, fy = phi(x), phi(y)
    assert fx.shape == (7, feature_dim(5, degree)) == (7, math.comb(5 + degree, degree))
    dot = (x * y).sum(-1)
    kernel = sum(phi.coeffs[n] ** 2 * dot**n for n in range(degree + 1))
    torch.testing.assert_close((fx * fy).sum(-1), kernel, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(fx[:, :5], phi.coeffs[1] * x)


def test_degree_two_features_are_each_product_once():
    phi = PolynomialFeatures(3, 2).double()
    x = torch.tensor([2.0, 3.0, 5.0], dtype=torch.float64)
    r2 = math.sqrt(2)
    expected = [2, 3, 5, 1, 4 / r2, 6, 10, 9 / r2, 15, 25 / r2]   # a_2 = 1/sqrt(2), cross terms x sqrt(2)
    torch.testing.assert_close(phi(x), torch.tensor(expected, dtype=torch.float64))


def layer(**options):
    torch.manual_seed(0)
    return MIXERS.get("atlas")(16, n_heads=2, window=3, **options).double()


def test_chunks_of_several_tokens_are_another_function_from_the_same_first_token():
    """chunk_size C > 1 takes a chunk's gradients at its start memory: the first token of a chunk sees the same
    memory as the per-token rule, later tokens do not (the paper's approximation, not the rule)."""
    exact, chunked = layer(chunk_size=1), layer(chunk_size=4)
    chunked.load_state_dict(exact.state_dict())
    x = torch.randn(2, 6, 16, dtype=torch.float64)
    with torch.no_grad():
        y1, y4 = exact(x)[0], chunked(x)[0]
    torch.testing.assert_close(y4[:, :1], y1[:, :1], atol=1e-12, rtol=1e-12)  # both take token 0's at M_0
    assert (y4[:, 1:] - y1[:, 1:]).abs().amax(dim=(0, 2)).min() > 1e-6      # token 1 on: at M_0, not M_{t-1}


@pytest.mark.parametrize("chunk_size", [1, 4])
def test_state_size_counts_the_floats_held(chunk_size):
    m = layer(chunk_size=chunk_size)
    _, state = m(torch.randn(1, 5, 16, dtype=torch.float64))
    held = sum(t.numel() for t in state.h if isinstance(t, torch.Tensor)) + state.conv.numel()
    assert held == m.state_size(5) == m.state_size(500)


def test_the_memory_learns_in_context():
    """Repeating a sequence: the memory trained on its first pass recalls v better on the second (the read's
    error against v shrinks), which a memory frozen at its initial weights cannot."""
    from gatelab.ops import recurrent_atlas
    m = layer(chunk_size=1, residual=False)
    x = torch.randn(1, 12, 16, dtype=torch.float64).repeat(1, 2, 1)
    with torch.no_grad():
        (q, k, v), kw, _, _ = m.features(x, None, 0)
        kw.update(beta=torch.full_like(kw["beta"], 0.05))
        o, _ = recurrent_atlas(k, k, v, **kw)                    # read at the keys: how well is v recalled?
    first, second = ((o[:, s] - v[:, s]).square().mean() for s in (slice(0, 12), slice(12, 24)))
    assert second < 0.8 * first


@pytest.mark.parametrize("name", sorted(AtlasConfig.RANGES))
def test_each_range_is_enforced_at_construction(name):
    field = AtlasConfig.__dataclass_fields__[name]
    integer = "int" in str(field.type)
    for bad in values_outside(AtlasConfig.RANGES[name], integer):
        options = {"d_model": 16, "n_heads": 2, name: bad}
        with pytest.raises(ConfigError, match=name):
            MIXERS.get("atlas")(**options) if name != "d_model" else MIXERS.get("atlas")(bad, n_heads=2)


@pytest.mark.parametrize("options,match", [(dict(window=0), "window"), (dict(degree=0), "degree"),
                                           (dict(ns_steps=-1), "ns_steps"), (dict(d_model=30, n_heads=4), "divisible")])
def test_bad_options_name_the_option(options, match):
    with pytest.raises(ConfigError, match=match):
        MIXERS.get("atlas")(**{"d_model": 16, "n_heads": 2, **options})
