"""The reductions of "Reducing the Transformer Architecture to a Minimum" on attn: merged query-key matrices,
symmetric similarity, no value / output projection."""
import pytest
import torch

from gatelab.config import ConfigError
from gatelab.registry import MIXERS

d, H = 16, 2


def attn(key="attn", **opts):
    return MIXERS.get(key)(d, n_heads=H, **opts).double()


def probed(mixer, x, probe="score_probe"):
    """The mixer's output for ``x`` and what its ``probe`` saw (the scores before the mask, by default)."""
    seen = []
    handle = getattr(mixer, probe).register_forward_hook(lambda m, i, o: seen.append(o))
    y, _ = mixer(x)
    handle.remove()
    return y, seen[0]


def test_merged_matrix_gives_the_scores_and_output_of_its_factors():
    torch.manual_seed(0)
    full, merged = attn(rope=False), attn(qk_merged=True, rope=False)
    D = d // H
    wq, wk = full.q_proj.weight.view(H, D, d), full.k_proj.weight.view(H, D, d)       # (H, D, d) each
    w_qk = torch.einsum("hed,hef->hdf", wq, wk)                                      # (H, d, d): W_Q^h W_K^hT
    with torch.no_grad():
        merged.q_proj.weight.copy_(w_qk.transpose(1, 2).reshape(H * d, d))
        merged.v_proj.weight.copy_(full.v_proj.weight)
        merged.o_proj.weight.copy_(full.o_proj.weight)
    x = torch.randn(2, 7, d, dtype=torch.float64)
    y_full, s_full = probed(full, x)
    y_merged, s_merged = probed(merged, x)
    torch.testing.assert_close(s_merged, s_full, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(y_merged, y_full, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("opts", [dict(symmetric=True), dict(symmetric=True, rope=True, qk_norm=True),
                                  dict(symmetric=True, qk_merged=True, rope=False)])
def test_symmetric_similarity_is_symmetric(opts):
    mixer = attn(**opts)
    _, scores = probed(mixer, torch.randn(2, 6, d, dtype=torch.float64))      # (B, H, T, T) before the mask
    torch.testing.assert_close(scores, scores.transpose(-1, -2), atol=1e-12, rtol=1e-12)
    _, plain = probed(attn(), torch.randn(2, 6, d, dtype=torch.float64))
    assert (plain - plain.transpose(-1, -2)).abs().max() > 1e-3                   # the default is not


def test_unmerged_symmetric_similarity_bounds_each_score_by_the_self_scores():
    _, s = probed(attn(symmetric=True, rope=False), torch.randn(1, 6, d, dtype=torch.float64))
    diag = s.diagonal(dim1=-2, dim2=-1)                                           # (B, H, T)
    assert (diag >= 0).all()
    assert (s <= (diag[..., :, None] * diag[..., None, :]).sqrt() + 1e-12).all()


def test_no_value_no_output_heads_mix_their_own_slice_of_the_input():
    mixer = attn(no_value=True, no_output=True)
    assert mixer.v_proj is None and mixer.o_proj is None
    probs = []
    mixer.attn_probe.register_forward_hook(lambda m, i, o: probs.append(o))
    x = torch.randn(2, 5, d, dtype=torch.float64)
    y, _ = mixer(x)
    expected = torch.einsum("bhqk,bkhd->bqhd", probs[0], x.view(2, 5, H, d // H)).flatten(2)
    torch.testing.assert_close(y, expected)
    torch.testing.assert_close(y[:, 0], x[:, 0])                                    # the first token sees itself


@pytest.mark.parametrize("opts,count", [
    (dict(), 4 * d * d),
    (dict(qk_merged=True, rope=False), H * d * d + 2 * d * d),
    (dict(symmetric=True), 3 * d * d),
    (dict(symmetric=True, qk_norm=True), 3 * d * d + d // H),
    (dict(qk_merged=True, symmetric=True, rope=False), H * d * (d + 1) // 2 + 2 * d * d),
    (dict(no_value=True, no_output=True), 2 * d * d),
    (dict(qk_merged=True, symmetric=True, rope=False, no_value=True, no_output=True), H * d * (d + 1) // 2),
])
def test_parameter_counts(opts, count):
    mixer = attn(**opts)
    assert sum(p.numel() for p in mixer.parameters()) == count == mixer.expected_num_params()


def test_default_attention_keeps_its_parameter_names():
    assert list(attn().state_dict()) == ["q_proj.weight", "k_proj.weight", "v_proj.weight", "o_proj.weight"]


def test_merged_cache_holds_the_input_once_per_token():
    mixer = attn(qk_merged=True, rope=False, n_kv_heads=1)
    _, cache = mixer(torch.randn(1, 5, d, dtype=torch.float64))
    assert cache.k.shape == (1, 5, 1, d) and cache.v.shape == (1, 5, 1, d // H)
    assert mixer.state_size(5) == 5 * (d + d // H)


@pytest.mark.parametrize("key,opts,match", [
    ("attn", dict(qk_merged=True), "qk_merged=True with rope=True"),
    ("attn", dict(qk_merged=True, rope=False, qk_norm=True), "qk_merged=True with qk_norm=True"),
    ("attn", dict(symmetric=True, n_kv_heads=1), "symmetric=True with n_kv_heads=1"),
    ("attn", dict(no_value=True, n_kv_heads=1), "no_value=True needs n_kv_heads"),
    ("attn", dict(no_output=True, head_dim=4), "no_output=True needs n_heads"),
    ("attn", dict(symmetric=True, n_chains=2), "symmetric with n_chains=2"),
    ("attn", dict(qk_merged="yes"), "qk_merged"),
    ("gated_attn", dict(symmetric=True, gate_position="g4"), "gated_attn with symmetric"),
    ("gated_attn", dict(qk_merged=True, rope=False, qk_norm=False, gate_position="g3"), "gated_attn with qk_merged"),
])
def test_bad_reductions_fail_at_construction(key, opts, match):
    with pytest.raises(ConfigError, match=match):
        MIXERS.get(key)(d, n_heads=H, **opts)
