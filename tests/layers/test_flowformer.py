"""Flowformer's flow attention: the properties of its flows (unit incoming flow per sink, uniform competition
among identical sources, allocation as a gate), its options and its bad input."""
import pytest
import torch

from gatelab.config import ConfigError
from gatelab.ops import flow_attention
from gatelab.registry import MIXERS


def features(B, T, H, K, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return (torch.sigmoid(torch.randn(B, T, H, K, generator=gen, dtype=torch.float64)) for _ in range(2))


@pytest.mark.parametrize("causal", [True, False])
def test_identical_sources_compete_evenly_and_each_sink_reads_its_allocation(causal):
    """With every key the same (kappa), each source's outgoing flow is O_j = n_j / (kappa . sum_{i<=j} q_i), the
    conserved sources are all 1 so the competition is uniform (C = 1), and each sink's unit incoming flow makes the
    read-out of constant values exactly its allocation sigmoid(I^), I^_i = phi(q_i).kappa sum_j O_j (/ n_i,
    causal)."""
    q, k = features(1, 12, 2, 3)
    kappa = k[:, :1]
    k = kappa.expand_as(k)
    v = torch.ones(1, 12, 2, 4, dtype=torch.float64)
    o, _ = flow_attention(q, k, v, causal=causal, eps=1e-12)
    n = torch.arange(1, 13, dtype=torch.float64)[:, None]                  # (T, 1)
    if causal:
        outgoing = n / (q.cumsum(1) * kappa).sum(-1)
        conserved_sink = (q * kappa).sum(-1) * outgoing.cumsum(1) / n
    else:
        conserved_sink = (q * kappa).sum(-1) * 12 / (q.sum(1, keepdim=True) * kappa).sum(-1)
    expected = torch.sigmoid(conserved_sink)[..., None].expand_as(o)
    torch.testing.assert_close(o, expected, atol=1e-9, rtol=1e-9)


def test_the_first_token_reads_its_own_value_at_allocation_sigmoid_one():
    """Causal, the first sink has one source: unit flow in and out, so I^ = 1 and o_0 = sigmoid(1) v_0."""
    q, k = features(3, 5, 2, 4)
    v = torch.randn(3, 5, 2, 3, dtype=torch.float64)
    o, _ = flow_attention(q, k, v, eps=1e-12)
    torch.testing.assert_close(o[:, 0], torch.sigmoid(torch.tensor(1.0, dtype=torch.float64)) * v[:, 0])


@pytest.mark.parametrize("causal", [True, False])
def test_without_competition_the_output_is_normalised_linear_attention_gated_by_the_allocation(causal):
    """A tiny clamp makes every conserved source equal (competition off): the output is the flow-normalised
    linear-attention read-out times one allocation per sink and head, in (1/2, 1) since I^ > 0."""
    q, k = features(2, 9, 2, 3)
    v = torch.randn(2, 9, 2, 4, dtype=torch.float64)
    o, _ = flow_attention(q, k, v, causal=causal, clamp=1e-12, eps=1e-12)
    scores = torch.einsum("bihk,bjhk->bhij", q, k)
    if causal:
        scores = scores.tril()
    read = torch.einsum("bhij,bjhv->bihv", scores / scores.sum(-1, keepdim=True), v)
    gate = o / read
    torch.testing.assert_close(gate, gate[..., :1].expand_as(gate), atol=1e-8, rtol=1e-8)
    assert (gate > 0.5).all() and (gate < 1).all()


def test_the_clamp_bounds_the_competition():
    """Sources compete through exp(O^) with O^ clipped to [-clamp, clamp]: a wider clamp changes the output."""
    q, k = features(1, 20, 1, 4)
    k = k * 30  # strong keys: large conserved sources
    v = torch.randn(1, 20, 1, 2, dtype=torch.float64)
    narrow, wide = (flow_attention(q, k, v, causal=False, clamp=c)[0] for c in (1.0, 5.0))
    assert not torch.allclose(narrow, wide)


def test_causal_state_is_constant_in_length_and_decoding_matches_the_forward():
    mixer = MIXERS.get("flowformer")(16, n_heads=2).double()
    assert mixer.state_size(64) == mixer.state_size(4096) == 2 * (4 * 8 + 1 + 8 * 8)
    x = torch.randn(2, 7, 16, dtype=torch.float64)
    with torch.no_grad():
        y, state = mixer(x)
        decoded, s = [], mixer.init_state(2)
        for t in range(7):
            y_t, s = mixer.step(x[:, t:t + 1], s)
            decoded.append(y_t)
    assert state.count == 7 and state.kv.shape == (2, 2, 8, 8) and s.count == 7
    torch.testing.assert_close(torch.cat(decoded, 1), y, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(s.kv, state.kv, atol=1e-10, rtol=1e-10)
    encoder = MIXERS.get("flowformer")(16, n_heads=2, causal=False)
    assert encoder.state_size(64) == 2 * 64 * 16
    with pytest.raises(ConfigError, match="no decoding state"):
        encoder.init_state(1)
    with pytest.raises(ConfigError, match="no decoding state"):
        encoder(torch.zeros(1, 2, 16), state)


def test_bias_option_adds_the_projection_biases():
    plain, biased = (MIXERS.get("flowformer")(16, n_heads=2, bias=b) for b in (False, True))
    assert sum(p.numel() for p in biased.parameters()) - sum(p.numel() for p in plain.parameters()) == 3 * 16 + 16


@pytest.mark.parametrize("opts,match", [
    (dict(d_model=0), "d_model"), (dict(n_heads=0), "n_heads"), (dict(head_dim=0), "head_dim"),
    (dict(eps=0.0), "eps"), (dict(eps=0.1), "eps"), (dict(clamp=0.0), "clamp"), (dict(clamp=50.0), "clamp"),
    (dict(chunk_size=0), "chunk_size"), (dict(d_model=30, n_heads=4), "not divisible"),
    (dict(feature_map="relu"), "unknown config key.*feature_map"),
])
def test_bad_options_fail_at_construction(opts, match):
    with pytest.raises(ConfigError, match=match):
        MIXERS.get("flowformer")(**{"d_model": 16, **opts})


@pytest.mark.parametrize("causal", [True, False])
def test_an_empty_sequence_gives_an_empty_output_and_keeps_the_state(causal):
    torch.manual_seed(0)
    mixer = MIXERS.get("flowformer")(16, n_heads=2, causal=causal).double()
    y, state = mixer(torch.zeros(2, 0, 16, dtype=torch.float64))
    assert y.shape == (2, 0, 16)
    if not causal:
        assert state is None
        return
    assert state.count == 0 and not state.kv.any()
    x = torch.randn(2, 5, 16, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(mixer(x, state)[0], mixer(x)[0], atol=1e-12, rtol=1e-12)
        _, after = mixer(x)
        _, kept = mixer(x[:, :0], after)
    assert kept.count == 5 and torch.equal(kept.kv, after.kv)
