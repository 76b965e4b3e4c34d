"""The bidirectional form of every registered token mixer: it reads the future, its reverse scan is the forward scan
of the reversed sequence, padding never reaches a real position, and chunked equals recurrent both ways."""
from typing import get_args, get_type_hints

import pytest
import torch

from gatelab.layers.token import Bidirectional, bidirectional_mixer
from gatelab.layers.token._flip import flip_padded
from gatelab.registry import MIXERS

D_MODEL, N_HEADS, T = 16, 2, 9
KEYS = MIXERS.names()
CAUSAL = [k for k in KEYS if MIXERS.get(k).directions == "causal"]
MODES = [k for k in CAUSAL   # mixers with a chunked and a recurrent form (kernel_rpe's modes are fft and quadratic)
         if {"chunk", "recurrent"} <= set(get_args(get_type_hints(MIXERS.get(k).Config).get("mode")))]


def build(key, params="shared", combine="gate", **opts):   # (gate: the combine with parameters to test)
    torch.manual_seed(0)
    return bidirectional_mixer(key, D_MODEL, {"n_heads": N_HEADS, **opts}, params, combine).double()


def test_flip_padded_reverses_each_sequence_within_its_length_and_is_its_own_inverse():
    x = torch.arange(12.).view(2, 6, 1)
    out = flip_padded(x, torch.tensor([6, 4]))
    assert out[0, :, 0].tolist() == [5, 4, 3, 2, 1, 0]
    assert out[1, :, 0].tolist() == [9, 8, 7, 6, 10, 11]
    assert torch.equal(flip_padded(out, torch.tensor([6, 4])), x)
    assert torch.equal(flip_padded(x, None), x.flip(1))


@pytest.mark.parametrize("key", KEYS)
def test_output_reads_past_and_future(key):
    mixer = build(key)
    x = torch.randn(1, T, D_MODEL, dtype=torch.float64, requires_grad=True)
    y, state = mixer(x)
    assert y.shape == x.shape and state is None
    (grad,) = torch.autograd.grad(y[:, T // 2].sum(), x)
    assert grad[:, T // 2 + 1:].abs().max() > 0, "no dependence on later tokens"
    assert grad[:, :T // 2].abs().max() > 0, "no dependence on earlier tokens"


@pytest.mark.parametrize("key", CAUSAL)
@pytest.mark.parametrize("params", ["shared", "separate"])
def test_reverse_scan_is_the_forward_scan_of_the_reversed_sequence(key, params):
    mixer = build(key, params)
    x = torch.randn(2, T, D_MODEL, dtype=torch.float64)
    with torch.no_grad():
        y_f, y_b = mixer.scans(x)
        backward = mixer.backward_mixer or mixer.forward_mixer
        torch.testing.assert_close(y_f, mixer.forward_mixer(x)[0], atol=1e-12, rtol=1e-12)
        torch.testing.assert_close(y_b, backward(x.flip(1))[0].flip(1), atol=1e-12, rtol=1e-12)
        g_f, g_b = torch.sigmoid(mixer.gate(x)).chunk(2, -1)
        torch.testing.assert_close(mixer(x)[0], g_f * y_f + g_b * y_b, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("key", KEYS)
def test_padding_never_changes_real_positions(key):
    mixer = build(key)
    lengths = torch.tensor([T, 5])
    x = torch.randn(2, T, D_MODEL, dtype=torch.float64)
    other = x.clone()
    other[1, 5:] = torch.randn(T - 5, D_MODEL, dtype=torch.float64) * 10
    with torch.no_grad():
        y, y_other = mixer(x, lengths=lengths)[0], mixer(other, lengths=lengths)[0]
        alone = None if key == "vig" else mixer(x[1:, :5])[0]  # vig's 2-D token map is fixed by T
    torch.testing.assert_close(y[:, :5], y_other[:, :5], atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(y[0], y_other[0], atol=1e-10, rtol=1e-10)
    if alone is not None:
        torch.testing.assert_close(y[1:, :5], alone, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("key", MODES)
def test_chunked_equals_recurrent_in_both_directions(key):
    chunked, recurrent = build(key, "separate", mode="chunk"), build(key, "separate", mode="recurrent")
    recurrent.load_state_dict(chunked.state_dict())
    x = torch.randn(2, T, D_MODEL, dtype=torch.float64)
    lengths = torch.tensor([T, 6])
    y_c, y_r = chunked(x, lengths=lengths)[0], recurrent(x, lengths=lengths)[0]
    torch.testing.assert_close(y_c, y_r, atol=1e-10, rtol=1e-10)
    g_c = torch.autograd.grad(y_c.square().sum(), list(chunked.parameters()))
    g_r = torch.autograd.grad(y_r.square().sum(), list(recurrent.parameters()))
    for a, b in zip(g_c, g_r, strict=True):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("params,combine", [("shared", "gate"), ("separate", "add"), ("shared", "mean")])
def test_finite_gradients_and_parameter_count(key, params, combine):
    mixer = build(key, params, combine)
    y, _ = mixer(torch.randn(2, T, D_MODEL, dtype=torch.float64))
    y.square().mean().backward()
    for name, p in mixer.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert sum(p.numel() for p in mixer.parameters()) == mixer.expected_num_params()
    assert mixer.state_size(64) > 0


@pytest.mark.parametrize("combine", ["mean", "add"])
def test_mean_and_sum_combine_the_two_scans(combine):
    mixer = build("gla", combine=combine)
    x = torch.randn(2, T, D_MODEL, dtype=torch.float64)
    with torch.no_grad():
        y_f, y_b = mixer.scans(x)
        expected = (y_f + y_b) / 2 if combine == "mean" else y_f + y_b
        torch.testing.assert_close(mixer(x)[0], expected, atol=1e-12, rtol=1e-12)


def test_a_bidirectional_mixer_has_no_decoding_path():
    mixer = build("gla")
    assert isinstance(mixer, Bidirectional)
    with pytest.raises(ValueError, match="decod"):
        mixer.step(torch.zeros(1, 1, D_MODEL, dtype=torch.float64), None)
    attn = build("attn")
    with pytest.raises(ValueError, match="no decoding state"):
        attn(torch.zeros(1, 2, D_MODEL, dtype=torch.float64), attn.init_state(1))
