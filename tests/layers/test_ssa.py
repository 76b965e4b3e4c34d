"""Stochastically subsampled self-attention (SSA) on attn / gated_attn: random keys in training, all in evaluation."""
import pytest
import torch

from gatelab.config import ConfigError
from gatelab.layers.token._ssa import ssa_mask
from gatelab.models import DecoderLM, ModelConfig
from gatelab.registry import MIXERS
from tests.layers.test_attention_minimum import probed

d, H, T = 16, 2, 12


def pair(key="attn", **opts):
    """The mixer with SSA and the same weights without it."""
    torch.manual_seed(0)
    plain = MIXERS.get(key)(d, n_heads=H).double()
    ssa = MIXERS.get(key)(d, n_heads=H, ssa_rate=0.5, **opts).double()
    ssa.load_state_dict(plain.state_dict())
    return plain, ssa


@pytest.mark.parametrize("key", ["attn", "gated_attn"])
def test_evaluation_attends_to_every_key(key):
    plain, ssa = pair(key)
    x = torch.randn(2, T, d, dtype=torch.float64)
    assert torch.equal(ssa.eval()(x)[0], plain.eval()(x)[0])


@pytest.mark.parametrize("key,opts", [("attn", {}), ("gated_attn", {"ssa_pattern": "local_random", "ssa_window": 3})])
def test_training_output_differs_from_full_attention_and_is_seeded(key, opts):
    plain, ssa = pair(key, **opts)
    x = torch.randn(2, T, d, dtype=torch.float64)
    torch.manual_seed(1)
    a = ssa(x)[0]
    torch.manual_seed(1)
    b = ssa(x)[0]
    c = ssa(x)[0]                                                       # drawn anew at the next forward
    assert torch.equal(a, b) and not torch.allclose(a, c)
    assert not torch.allclose(a, plain(x)[0])


def test_rows_are_normalised_over_the_kept_keys_and_each_sample_draws_its_own():
    _, ssa = pair()
    _, p = probed(ssa, torch.randn(3, T, d, dtype=torch.float64), "attn_probe")  # (B, H, T, T)
    torch.testing.assert_close(p.sum(-1), torch.ones(3, H, T, dtype=torch.float64))
    assert (p.diagonal(dim1=-2, dim2=-1) > 0).all()                     # every query keeps its own key
    assert (p.triu(1) == 0).all()                                       # causal
    last = (p[:, :, -1] > 0).sum(-1)                                    # (B, H) keys the last query sees
    assert ((last == T // 2) | (last == T // 2 + 1)).all()              # round(0.5 T) drawn, plus its own
    assert torch.equal(p[:, 0] > 0, p[:, 1] > 0)                        # one subset for all heads
    assert not torch.equal(p[0] > 0, p[1] > 0) or not torch.equal(p[1] > 0, p[2] > 0)


def test_left_out_keys_get_no_gradient():
    _, ssa = pair()
    x = torch.randn(1, T, d, dtype=torch.float64, requires_grad=True)
    torch.manual_seed(3)
    y, p = probed(ssa, x, "attn_probe")
    seen = p[0, 0] > 0                                                  # (T, T) query i sees key j
    i = T - 1
    (grad,) = torch.autograd.grad(y[0, i].sum(), x)
    left_out = ~seen[i, :i + 1]
    assert left_out.any() and seen[i, :i + 1].sum() > 1
    assert (grad[0, :i + 1][left_out] == 0).all()
    assert (grad[0, :i + 1][seen[i, :i + 1]].abs().sum(-1) > 0).all()


def test_local_random_always_keeps_the_window():
    mask = ssa_mask(4, 10, 10, 0.1, "local_random", 3)                  # (B, 1, Tq, Tk)
    near = (torch.arange(10)[:, None] - torch.arange(10)[None, :]).abs() < 3
    assert mask[:, 0][:, near].all()
    assert mask.shape == (4, 1, 10, 10) and mask.sum() > 4 * near.sum()  # and one random key more at least


def test_a_cached_query_keeps_its_own_key():
    mask = ssa_mask(2, 3, 8, 0.2, "unstructured", 16)                  # 3 new queries after 5 cached keys
    assert mask[:, 0, torch.arange(3), torch.arange(5, 8)].all()


def test_training_stays_causal():
    _, ssa = pair()
    x = torch.randn(1, T, d, dtype=torch.float64, requires_grad=True)
    y, _ = ssa(x)
    for t in (0, 5, T - 2):
        (grad,) = torch.autograd.grad(y[:, t].sum(), x, retain_graph=True)
        assert grad[:, t + 1:].abs().max() == 0


def test_evaluation_decodes_with_its_cache():
    _, ssa = pair()
    ssa.eval()
    x = torch.randn(2, T, d, dtype=torch.float64)
    with torch.no_grad():
        y, _ = ssa(x)
        y1, state = ssa(x[:, :5])
        y2, _ = ssa(x[:, 5:], state)
    torch.testing.assert_close(torch.cat([y1, y2], 1), y, atol=1e-10, rtol=1e-10)


def test_padded_bidirectional_training_stays_finite():
    mixer = MIXERS.get("attn")(d, n_heads=H, causal=False, ssa_rate=0.1).double()
    y, _ = mixer(torch.randn(3, T, d, dtype=torch.float64), lengths=torch.tensor([T, 4, 1]))
    assert torch.isfinite(y).all()


def test_a_model_trains_with_ssa_and_evaluates_without():
    cfg = ModelConfig(vocab_size=30, d_model=d, n_heads=H, n_layers=2, mixer="attn",
                      mixer_options={"attn": {"ssa_rate": 0.25}})
    model = DecoderLM(cfg).double()
    ids = torch.randint(0, 30, (2, T))
    torch.manual_seed(0)
    train = model(ids).logits
    model.eval()
    assert not torch.allclose(train, model(ids).logits)
    assert model.generate(ids[:, :3], max_new_tokens=4).shape == (2, 7)


@pytest.mark.parametrize("opts,match", [
    (dict(ssa_rate=0.0), "ssa_rate"),
    (dict(ssa_rate=1.5), "ssa_rate"),
    (dict(ssa_rate=0.5, ssa_pattern="strided"), "ssa_pattern"),
    (dict(ssa_rate=0.5, ssa_pattern="local_random", ssa_window=0), "ssa_window"),
    (dict(ssa_pattern="local_random"), "no effect with ssa_rate=1"),
    (dict(ssa_rate=0.5, ssa_window=4), "ssa_window=4 has no effect with ssa_pattern='unstructured'"),
])
def test_bad_ssa_options_fail_at_construction(opts, match):
    with pytest.raises(ConfigError, match=match):
        MIXERS.get("gated_attn")(d, n_heads=H, **opts)
