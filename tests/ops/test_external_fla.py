"""Compare with flash-linear-attention's pure-torch reference functions (``naive.py``).

fla's package imports triton even for these torch-only functions, so the tests skip unless both are importable.
Its layers do not run on a CPU at all; only the naive references are used here.
"""
import warnings

import pytest
import torch
import torch.nn.functional as F

from gatelab.ops import chunk_gated_delta_rule, chunk_gla, chunk_simple_gla
from tests.utils import assert_close

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    gla_naive = pytest.importorskip("fla.ops.gla.naive")
    gdn_naive = pytest.importorskip("fla.ops.gated_delta_rule.naive")
    simple_gla_naive = pytest.importorskip("fla.ops.simple_gla.naive")
    hgrn_naive = pytest.importorskip("fla.ops.hgrn.naive")

B, T, H, K, V = 2, 100, 3, 16, 12


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_gla_matches_fla_naive_recurrent():
    q, k, v, h0 = rand(B, T, H, K, seed=1), rand(B, T, H, K, seed=2), rand(B, T, H, V, seed=3), rand(B, H, K, V, seed=4)
    g = F.logsigmoid(rand(B, T, H, K, seed=5)) / 2
    o_ref, s_ref = gla_naive.naive_recurrent_gla(q, k, v, g, initial_state=h0, output_final_state=True)
    o, s = chunk_gla(q, k, v, g=g, initial_state=h0, output_final_state=True)
    assert_close("o", o_ref, o, 1e-5)
    assert_close("state", s_ref, s, 1e-5)


def test_simple_gla_matches_fla_naive_chunk():
    q, k, v, h0 = rand(B, T, H, K, seed=1), rand(B, T, H, K, seed=2), rand(B, T, H, V, seed=3), rand(B, H, K, V, seed=4)
    g = F.logsigmoid(rand(B, T, H, seed=5))
    o_ref, s_ref = simple_gla_naive.naive_chunk_simple_gla(q, k, v, g, initial_state=h0, output_final_state=True)
    o, s = chunk_simple_gla(q, k, v, g=g, initial_state=h0, output_final_state=True)
    assert_close("o", o_ref, o, 1e-5)
    assert_close("state", s_ref, s, 1e-5)


@pytest.mark.parametrize("form", ["naive_recurrent_gated_delta_rule", "naive_chunk_gated_delta_rule"])
def test_gated_delta_rule_matches_fla_naive(form):
    q, k = F.normalize(rand(B, T, H, K, seed=1), dim=-1), F.normalize(rand(B, T, H, K, seed=2), dim=-1)
    v, h0 = rand(B, T, H, V, seed=3), rand(B, H, K, V, seed=4)
    g, beta = F.logsigmoid(rand(B, T, H, seed=5)), torch.rand(B, T, H, generator=torch.Generator().manual_seed(6))
    o_ref, s_ref = getattr(gdn_naive, form)(q, k, v, g=g, beta=beta, initial_state=h0, output_final_state=True)
    o, s = chunk_gated_delta_rule(q, k, v, g=g, beta=beta, initial_state=h0, output_final_state=True)
    assert_close("o", o_ref, o, 1e-5)
    assert_close("state", s_ref, s, 1e-5)


def test_hgrn_is_gla_with_unit_keys_and_queries():
    """HGRN's diagonal recurrence h_t = e^{g_t} h_{t-1} + x_t is GLA with one channel per head and q = k = 1."""
    x, g = rand(B, T, 8, seed=1), F.logsigmoid(rand(B, T, 8, seed=2))
    h0 = rand(B, 8, seed=3)
    o_ref, s_ref = hgrn_naive.naive_recurrent_hgrn(x, g, initial_state=h0, output_final_state=True)
    ones = torch.ones(B, T, 8, 1)
    o, s = chunk_gla(ones, ones, x.unsqueeze(-1), g=g.unsqueeze(-1), scale=1.0, initial_state=h0[..., None, None],
                     output_final_state=True)
    assert_close("o", o_ref, o.squeeze(-1), 1e-5)
    assert_close("state", s_ref, s.reshape(B, 8), 1e-5)
