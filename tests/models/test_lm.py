import re
import typing

import pytest
import torch

from gatelab.config import ConfigError
from gatelab.models import DecoderLM, ModelConfig
from gatelab.models.config import decoder_mixers
from gatelab.registry import MIXERS
from tests.utils import values_outside

DECODER_MIXERS = decoder_mixers()   # decoders are causal


def tiny(mixer: str, **kw) -> DecoderLM:
    return DecoderLM(ModelConfig(vocab_size=50, d_model=16, n_layers=2, n_heads=2, mixer=mixer, **kw)).double()


@pytest.mark.parametrize("key", DECODER_MIXERS)
def test_cached_decoding_equals_full_forward(key):
    model = tiny(key)
    ids = torch.randint(0, 50, (2, 12))
    with torch.no_grad():
        full = model(ids).logits
        out = model(ids[:, :5])
        logits = [out.logits]
        states = out.states
        for t in range(5, 12):
            out = model(ids[:, t:t + 1], states=states, step=True)
            logits.append(out.logits)
            states = out.states
    torch.testing.assert_close(torch.cat(logits, 1), full, atol=1e-10, rtol=1e-10)


def test_generate_greedy_matches_argmax_of_full_forward():
    model = tiny("gla,gated_attn").float()
    prompt = torch.randint(0, 50, (2, 4))
    out = model.generate(prompt, max_new_tokens=6)
    assert out.shape == (2, 10) and torch.equal(out[:, :4], prompt)
    with torch.no_grad():
        logits = model(out[:, :-1]).logits
    assert torch.equal(logits[:, 3:].argmax(-1), out[:, 4:])


def test_sampling_is_seeded():
    model = tiny("attn").float()
    prompt = torch.randint(0, 50, (1, 3))
    a = model.generate(prompt, 8, temperature=1.0, top_k=5, generator=torch.Generator().manual_seed(3))
    b = model.generate(prompt, 8, temperature=1.0, top_k=5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_hybrid_schedule_is_tiled_and_options_reach_their_mixer():
    cfg = ModelConfig(d_model=16, n_heads=2, n_layers=4, mixer="gla,gated_attn",
                      mixer_options={"gated_attn": {"gate_granularity": "headwise"}})
    model = DecoderLM(cfg)
    assert [type(b.mixer).__name__ for b in model.blocks] == ["GatedLinearAttention", "GatedAttention"] * 2
    assert model.blocks[1].mixer.gate.width == 1


def test_tied_embeddings_and_channel_none():
    model = DecoderLM(ModelConfig(d_model=16, n_heads=2, channel="none"))
    assert model.head.weight is model.embed.weight
    assert all(b.channel is None for b in model.blocks)


@pytest.mark.parametrize("kw,match", [
    (dict(mixer="gla,attn,gla", n_layers=4), "must divide n_layers"),
    (dict(mixer="nope"), "registered token mixers"),
    (dict(mixer="attn", mixer_options={"glaa": {}}), "registered token mixers"),
    (dict(channel="moe2"), "registered channel mixers"),
    (dict(mixer="swa", max_seq_len=32, mixer_options={"swa": {"window": 64}}), "window=64 is longer"),
])
def test_bad_model_configs(kw, match):
    with pytest.raises((ConfigError, KeyError), match=match):
        DecoderLM(ModelConfig(d_model=16, n_heads=2, **kw))


def _model_range_cases() -> list[tuple[str, object]]:
    ints = {name for name, tp in typing.get_type_hints(ModelConfig).items() if tp is int}
    return [(name, value) for name, interval in ModelConfig.RANGES.items()
            for value in values_outside(interval, name in ints)]


@pytest.mark.parametrize(("name", "value"), _model_range_cases(), ids=[f"{n}={v!r}" for n, v in _model_range_cases()])
def test_a_model_config_built_in_python_is_range_checked(name, value):
    """DecoderLM checks the ranges of a ModelConfig made in Python (which skips from_dict), before torch sees them."""
    with pytest.raises(ConfigError, match=rf"model\.{name}={re.escape(repr(value))} is out of range: .*"
                                          rf"\(allowed: {re.escape(ModelConfig.RANGES[name])}\)"):
        DecoderLM(ModelConfig(**{name: value}))


def test_sequence_longer_than_supported_is_an_error():
    model = DecoderLM(ModelConfig(d_model=16, n_heads=2, max_seq_len=8))
    with pytest.raises(ValueError, match="max_seq_len=8"):
        model(torch.zeros(1, 9, dtype=torch.long))


@pytest.mark.parametrize("key", DECODER_MIXERS)
def test_cached_decoding_with_short_conv(key):
    model = tiny(key, short_conv=3)
    ids = torch.randint(0, 50, (1, 9))
    with torch.no_grad():
        full = model(ids).logits
        out = model(ids[:, :1], states=[b.init_state(1) for b in model.blocks], step=True)
        logits, states = [out.logits], out.states
        for t in range(1, 9):
            out = model(ids[:, t:t + 1], states=states, step=True)
            logits.append(out.logits)
            states = out.states
    torch.testing.assert_close(torch.cat(logits, 1), full, atol=1e-10, rtol=1e-10)


def test_parameter_counting_and_matching():
    from gatelab.models.params import count_params, match_params

    cfg = ModelConfig(vocab_size=100, d_model=32, n_layers=2, n_heads=2, mixer="gla")
    assert count_params(cfg) == DecoderLM(cfg).num_params()
    target = count_params(ModelConfig(vocab_size=100, d_model=32, n_layers=2, n_heads=2, mixer="attn"))
    for mixer in ("gla", "mamba", "gdn", "gated_attn"):
        matched = match_params(ModelConfig(vocab_size=100, d_model=32, n_layers=2, n_heads=2, mixer=mixer), target)
        per_unit = 2 * 3 * 32   # two SwiGLU layers, 3 * d_model weights per unit of width
        assert abs(count_params(matched) - target) <= 2 * per_unit, mixer   # within half a step of 4 units
    with pytest.raises(ConfigError, match="channel='none'"):
        match_params(ModelConfig(channel="none"), target)


def test_dropout_acts_in_training_only():
    model = DecoderLM(ModelConfig(vocab_size=50, d_model=16, n_layers=2, n_heads=2, dropout=0.5))
    x = torch.randint(0, 50, (2, 8))
    torch.manual_seed(0)
    a = model(x).logits
    b = model(x).logits
    assert not torch.equal(a, b)
    model.eval()
    assert torch.equal(model(x).logits, model(x).logits)
    with pytest.raises(ConfigError, match="model.dropout"):
        DecoderLM(ModelConfig(dropout=1.0))


def _bounds_seen(model: DecoderLM, ids: torch.Tensor) -> list:
    """The lower_bound each layer's mixer received in one forward (None when it got none)."""
    seen = [None] * len(model.blocks)
    hooks = [b.mixer.register_forward_hook(lambda m, a, kw, out, i=i: seen.__setitem__(i, kw.get("lower_bound")),
                                           with_kwargs=True) for i, b in enumerate(model.blocks)]
    model(ids)
    for h in hooks:
        h.remove()
    return seen


def test_hgrn2_layers_get_hgrns_cumulative_softmax_lower_bounds():
    model = DecoderLM(ModelConfig(vocab_size=50, d_model=16, n_layers=4, n_heads=2, mixer="hgrn2,hgrn2,attn,hgrn2"))
    ids = torch.randint(0, 50, (1, 6))
    assert model.lower_bounds.shape == (4, 16) and not model.lower_bounds.any()   # zeros, as flash-linear-attention
    seen = _bounds_seen(model, ids)
    assert seen[0] is None and seen[2] is None                # the first layer (bound 0) and the attention layer
    torch.testing.assert_close(seen[1], torch.full((16,), 0.25))
    torch.testing.assert_close(seen[3], torch.full((16,), 0.75))
    with torch.no_grad():
        model.lower_bounds.normal_()
    p = model.lower_bounds.softmax(0)
    torch.testing.assert_close(_bounds_seen(model, ids)[3], p[1:].sum(0))      # cumsum minus the first row
    model(ids, labels=ids).loss.backward()
    assert torch.isfinite(model.lower_bounds.grad).all() and model.lower_bounds.grad[1:].abs().sum() > 0


def test_hgrn2_lower_bound_can_be_switched_off():
    model = DecoderLM(ModelConfig(vocab_size=50, d_model=16, n_layers=2, n_heads=2, mixer="hgrn2",
                                  mixer_options={"hgrn2": {"lower_bound": False}}))
    assert model.lower_bounds is None and "lower_bounds" not in model.state_dict()
    assert _bounds_seen(model, torch.randint(0, 50, (1, 6))) == [None, None]


def test_mixers_sharing_lower_bounds_must_agree_on_width(monkeypatch):
    from gatelab.layers.token import HGRN2

    monkeypatch.setitem(MIXERS._entries, "hgrn2_copy", HGRN2)
    with pytest.raises(ConfigError, match="one lower_bounds table"):
        DecoderLM(ModelConfig(d_model=16, n_heads=2, mixer="hgrn2,hgrn2_copy",
                              mixer_options={"hgrn2_copy": {"expand_ratio": 3}}))
