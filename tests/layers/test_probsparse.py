"""ProbSparse attention (Informer): the fast form against the reference, full attention when every query is active,
the measurement, lazy queries, padding, the online rule's continuation, sampling and bad options."""
import math

import pytest
import torch

from gatelab.config import ConfigError
from gatelab.ops.probsparse import (
    measure_reference,
    n_active,
    n_samples,
    probsparse_attention,
    probsparse_reference,
    sample_keys,
    select_informer,
    select_online,
    sparsity_measure,
)
from gatelab.ops.probsparse.fast import earlier_greater
from gatelab.ops.softmax_attn import softmax_attention
from gatelab.registry import MIXERS

FORMS = [(True, "online"), (True, "informer"), (False, "informer")]


def qkv(B=2, L=24, H=2, D=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(B, L, H, D, dtype=torch.float64, generator=g, requires_grad=True) for _ in range(3)]


@pytest.mark.parametrize("causal,selection", FORMS)
@pytest.mark.parametrize("factor,mean_over,lazy", [(1, "keys", "mean"), (2, "samples", "sum"), (1, "samples", "mean")])
def test_fast_form_equals_reference_with_gradients(causal, selection, factor, mean_over, lazy):
    q, k, v = qkv()
    opts = dict(factor=factor, causal=causal, selection=selection, mean_over=mean_over, lazy=lazy, seed=7)
    w = torch.randn(2, 24, 2, 4, dtype=torch.float64)
    o, _ = probsparse_attention(q, k, v, **opts)
    r = probsparse_reference(q, k, v, **opts)
    torch.testing.assert_close(o, r, atol=1e-10, rtol=1e-10)
    grads = torch.autograd.grad((o * w).sum(), (q, k, v))
    expected = torch.autograd.grad((r * w).sum(), (q, k, v))
    for g, e in zip(grads, expected, strict=True):
        torch.testing.assert_close(g, e, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("causal,selection", FORMS)
def test_every_query_active_equals_full_attention(causal, selection):
    """u = L (factor 20 at L = 24: 20 ceil(ln n) >= n for every n <= 24): ProbSparse is softmax attention."""
    q, k, v = qkv()
    o, _ = probsparse_attention(q, k, v, factor=20, causal=causal, selection=selection)
    full, _ = softmax_attention(q, k, v, causal=causal)
    torch.testing.assert_close(o, full, atol=1e-10, rtol=1e-10)


def test_layer_with_every_query_active_equals_attn_layer_causal_and_not():
    torch.manual_seed(0)
    attn = MIXERS.get("attn")(16, n_heads=2).double()
    x = torch.randn(2, 20, 16, dtype=torch.float64)
    for causal in (True, False):
        layer = MIXERS.get("probsparse")(16, n_heads=2, factor=20, causal=causal).double()
        layer.load_state_dict(attn.state_dict())  # strict: the same projections
        if causal:
            expected = attn(x)[0]
        else:
            q, k, v = attn.project(x)
            q, k = attn.rope(q), attn.rope(k)
            expected = attn.o_proj(softmax_attention(q, k, v, causal=False)[0].flatten(2))
        torch.testing.assert_close(layer(x)[0], expected, atol=1e-10, rtol=1e-10)


def test_measurement_is_max_minus_sum_over_keys_of_the_sampled_scores():
    q, k, _ = qkv(B=2, L=9, H=3, D=5)
    g = torch.Generator().manual_seed(1)
    idx = torch.randint(9, (2, 9, 4), generator=g)                                       # (B, L, U)
    valid = torch.rand(2, 9, 4, generator=g) < 0.7
    valid[..., 0] = True
    denom = torch.randint(1, 12, (2, 9), generator=g).double()
    m = sparsity_measure(q.transpose(1, 2), k.transpose(1, 2), idx, valid, denom)        # (B, H, L)
    for b in range(2):
        for h in range(3):
            for t in range(9):
                keys = idx[b, t][valid[b, t]].tolist()
                expected = measure_reference(q[b, t, h], k[b, :, h], keys, int(denom[b, t]))
                torch.testing.assert_close(m[b, h, t], expected, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("Tk,Tq", [(1, 1), (7, 7), (100, 100), (100, 37), (250, 1)])
def test_blocked_count_of_earlier_larger_measurements_equals_direct_count(Tk, Tq):
    m = torch.randint(0, 9, (2, 3, Tk)).double()                                         # many ties
    counts = earlier_greater(m, Tq)
    for p in range(Tk - Tq, Tk):
        expected = (m[..., :p] > m[..., p:p + 1]).sum(-1)
        assert torch.equal(counts[..., p - Tk + Tq], expected)


def test_lazy_queries_get_the_mean_or_cumulative_value_exactly():
    q, k, v = qkv(B=1, L=30, H=2, D=4)
    vt = v.detach().transpose(1, 2)                                                      # (B, H, L, D)
    o, m = probsparse_attention(q, k, v, factor=1, causal=False, selection="informer")
    active = select_informer(m, torch.tensor([30]), 1)
    assert (active.sum(-1) == math.ceil(math.log(30))).all()
    lazy = o.detach().transpose(1, 2)[~active].view(1, 2, -1, 4)                         # (B, H, L - u, D)
    torch.testing.assert_close(lazy, vt.mean(2, keepdim=True).expand_as(lazy), atol=1e-14, rtol=0)
    pos = torch.arange(1, 31, dtype=torch.float64)[:, None]
    for lazy_rule, expected in (("mean", vt.cumsum(2) / pos), ("sum", vt.cumsum(2))):
        o, m = probsparse_attention(q, k, v, factor=1, causal=True, selection="online", lazy=lazy_rule)
        active = select_online(m, 30, 1)
        assert 0 < active.sum() < active.numel()
        torch.testing.assert_close(o.detach().transpose(1, 2)[~active], expected[~active], atol=1e-14, rtol=0)


@pytest.mark.parametrize("causal", [False, True])
def test_padding_changes_no_real_output_and_equals_the_unpadded_sequence(causal):
    torch.manual_seed(0)
    layer = MIXERS.get("probsparse")(16, n_heads=2, factor=1, causal=causal, selection="informer").double().eval()
    x = torch.randn(2, 30, 16, dtype=torch.float64)
    lengths = torch.tensor([30, 19])
    x2 = x.clone()
    x2[1, 19:] = torch.randn(11, 16, dtype=torch.float64) * 100
    y, _ = layer(x, lengths=lengths)
    y2, _ = layer(x2, lengths=lengths)
    torch.testing.assert_close(y2[1, :19], y[1, :19], atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(y2[0], y[0], atol=1e-12, rtol=1e-12)
    alone, _ = layer(x[1:, :19])
    torch.testing.assert_close(y[1:, :19], alone, atol=1e-12, rtol=1e-12)
    assert not torch.allclose(layer(x2)[0][1, :19], y[1, :19])  # without lengths the pads do count


def test_online_rule_continues_across_any_split_and_is_sparse():
    torch.manual_seed(0)
    layer = MIXERS.get("probsparse")(16, n_heads=2, factor=1).double()
    x = torch.randn(2, 40, 16, dtype=torch.float64)
    with torch.no_grad():
        y, state = layer(x)
        parts, s = [], layer.init_state(2)
        for a, b in ((0, 7), (7, 8), (8, 25), (25, 40)):
            y_part, s = layer(x[:, a:b], s)
            parts.append(y_part)
        steps, s_step = [], layer.init_state(2)
        for t in range(40):
            y_t, s_step = layer.step(x[:, t:t + 1], s_step)
            steps.append(y_t)
    torch.testing.assert_close(torch.cat(parts, 1), y, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(torch.cat(steps, 1), y, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(s.measures, state.measures, atol=1e-10, rtol=1e-10)
    assert s.cache.offset == 40 and s.measures.shape == (2, 2, 40)
    active = select_online(state.measures, 40, 1)
    assert 0 < active.sum() < active.numel() // 2


def test_informer_rule_reads_the_future_and_has_no_decoding_state():
    torch.manual_seed(0)
    x = torch.randn(1, 30, 16, dtype=torch.float64)
    x2 = x.clone()
    x2[:, 29] = torch.randn(16, dtype=torch.float64) * 5
    informer = MIXERS.get("probsparse")(16, n_heads=2, factor=1, selection="informer").double().eval()
    online = MIXERS.get("probsparse")(16, n_heads=2, factor=1).double()
    online.load_state_dict(informer.state_dict())
    assert not torch.allclose(informer(x)[0][:, :29], informer(x2)[0][:, :29])  # the top-u choice moved
    torch.testing.assert_close(online(x)[0][:, :29], online(x2)[0][:, :29], atol=0, rtol=0)
    assert informer(x)[1] is None
    with pytest.raises(ConfigError, match="selection='online' to decode"):
        informer.init_state(1)
    with pytest.raises(ConfigError, match="no decoding state"):
        informer(x, online.init_state(1))
    with pytest.raises(ConfigError, match="is not causal"):
        MIXERS.get("probsparse")(16, causal=False).init_state(1)


def test_informer_rule_resamples_in_training_from_the_global_rng_and_is_fixed_in_eval():
    torch.manual_seed(0)
    layer = MIXERS.get("probsparse")(16, n_heads=2, factor=1, causal=False).double()
    x = torch.randn(2, 60, 16, dtype=torch.float64)
    torch.manual_seed(1)
    a = layer(x)[0]
    torch.manual_seed(1)
    torch.testing.assert_close(layer(x)[0], a, atol=0, rtol=0)
    assert not torch.allclose(layer(x)[0], a)
    layer.eval()
    torch.testing.assert_close(layer(x)[0], layer(x)[0], atol=0, rtol=0)


def test_counts_are_informers_and_samples_are_uniform_and_reproducible():
    n = torch.arange(1, 3001)
    for c in (1, 5):
        informer = torch.tensor([c * math.ceil(math.log(i)) for i in range(1, 3001)])
        assert torch.equal(n_active(n, c), torch.minimum(n, informer))
        assert torch.equal(n_samples(n, c), torch.minimum(n, informer).clamp(min=1))
    pos = torch.arange(500)
    idx = sample_keys(3, pos, torch.tensor(7), 40)                                      # (P, U)
    assert idx.min() == 0 and idx.max() == 6
    freq = torch.bincount(idx.flatten(), minlength=7).double() / idx.numel()
    assert (freq - 1 / 7).abs().max() < 0.01
    assert torch.equal(sample_keys(3, pos[250:], torch.tensor(7), 10), idx[250:, :10])  # (seed, t, j, n) only
    assert not torch.equal(sample_keys(4, pos, torch.tensor(7), 40), idx)
    per_seq = sample_keys(3, pos, torch.tensor([7, 30])[:, None, None], 40)              # (B, P, U)
    assert torch.equal(per_seq[0], idx) and per_seq[1].max() == 29


def test_state_size_and_parameter_count():
    layer = MIXERS.get("probsparse")(16, n_heads=2, head_dim=6, bias=True)
    assert sum(p.numel() for p in layer.parameters()) == layer.expected_num_params() == 4 * 16 * 12 + 3 * 12 + 16
    assert layer.state_size(10) == 10 * 2 * (2 * 6 + 1)
    assert MIXERS.get("probsparse")(16, n_heads=2, causal=False).state_size(10) == 10 * 2 * 2 * 8


@pytest.mark.parametrize("opts,match", [
    (dict(factor=0), "factor=0 is out of range"),
    (dict(factor=-2), "factor=-2 is out of range"),
    (dict(factor=2.5), "factor: expected an integer"),
    (dict(causal=False, selection="online"), "needs causal=True"),
    (dict(causal=False, causal_lazy="sum"), "causal_lazy='sum' has no effect"),
    (dict(selection="topk"), "'topk' is not allowed"),
    (dict(mean_over="all"), "'all' is not allowed"),
    (dict(rope=False, rope_base=500.0), "rope_base=500.0 has no effect"),
    (dict(sample_seed=-1), "sample_seed=-1 is out of range"),
    (dict(n_heads=3), "not divisible by n_heads=3"),
    (dict(colour="red"), "unknown config key.*colour"),
])
def test_bad_options_fail_at_construction(opts, match):
    with pytest.raises(ConfigError, match=match):
        MIXERS.get("probsparse")(16, **opts)


def test_bad_lengths_fail():
    layer = MIXERS.get("probsparse")(16, n_heads=2, causal=False)
    x = torch.randn(2, 5, 16)
    for lengths in (torch.tensor([5, 0]), torch.tensor([6, 5]), torch.tensor([5])):
        with pytest.raises(ValueError, match="lengths must be"):
            layer(x, lengths=lengths)
