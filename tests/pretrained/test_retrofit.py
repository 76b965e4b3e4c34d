"""retrofit_gate: every attn layer gets a G1 gate, the logits stay bit-identical at step 0, the gate trains, and
other mixers are left alone."""
import pytest
import torch

from gatelab.analysis.hooks import hooked
from gatelab.config import ConfigError
from gatelab.layers.token.attention import GatedAttention
from gatelab.models.lm import DecoderLM, ModelConfig
from gatelab.pretrained.retrofit import gated_config, retrofit_gate

ATTN = {"attn": {"n_kv_heads": 2, "qk_norm": True, "rope_base": 500.0, "bias": "all"}}


def tiny(dtype=torch.float32, mixer="attn", options=None) -> DecoderLM:
    config = ModelConfig(vocab_size=120, d_model=32, n_layers=2, n_heads=4, mixer=mixer,
                         mixer_options=ATTN if options is None else options)
    return DecoderLM(config).to(dtype).eval()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("granularity", ["elementwise", "headwise"])
def test_logits_bit_identical_at_step_0(dtype, granularity):
    source = tiny(dtype)
    gated = retrofit_gate(source, granularity)
    x = torch.randint(0, 120, (2, 19))
    assert torch.equal(source(x).logits, gated(x).logits)
    # the materialised attention path (taken while analysis reads the probabilities) and token-by-token decoding
    names = [f"blocks.{i}.mixer.attn_probe" for i in range(2)]
    with hooked(source, names, lambda *_: None), hooked(gated, names, lambda *_: None):
        assert torch.equal(source(x).logits, gated(x).logits)
    assert torch.equal(source.generate(x[:, :5], 6), gated.generate(x[:, :5], 6))


def test_gated_layers_keep_the_attention_options_and_weights():
    source = tiny()
    gated = retrofit_gate(source, "headwise")
    assert gated.config.mixer == "gated_attn" and source.config.mixer == "attn"
    for old, new in zip(source.blocks, gated.blocks, strict=True):
        mixer = new.mixer
        assert isinstance(mixer, GatedAttention)
        c = mixer.config
        assert (c.n_kv_heads, c.qk_norm, c.rope_base, c.bias, c.gate_position, c.gate_granularity) == \
            (2, True, 500.0, "all", "g1", "headwise")
        assert mixer.gate.proj.weight.shape == (4, 32) and mixer.gate.proj.bias is None
        assert not mixer.gate.proj.weight.any()
        for name in ("q_proj", "k_proj", "v_proj", "q_norm", "k_norm"):
            assert torch.equal(getattr(old.mixer, name).weight, getattr(mixer, name).weight)
        assert torch.equal(old.mixer.o_proj.weight * 2, mixer.o_proj.weight)
        assert torch.equal(old.mixer.o_proj.bias, mixer.o_proj.bias)
        assert torch.equal(old.channel.w1.weight, new.channel.w1.weight)
    # an attn source without QK-norm gives gated layers without it (gated_attn's default is on)
    plain = retrofit_gate(tiny(options={}))
    assert plain.blocks[0].mixer.q_norm is None and plain.config.mixer_options["gated_attn"]["qk_norm"] is False
    assert gated.num_params() == source.num_params() + 2 * 32 * 4


def test_source_is_left_unchanged():
    source = tiny()
    before = {k: v.clone() for k, v in source.state_dict().items()}
    retrofit_gate(source)
    assert all(torch.equal(before[k], v) for k, v in source.state_dict().items())


def test_the_gate_trains():
    gated = retrofit_gate(tiny()).train()
    x = torch.randint(0, 120, (2, 12))
    gated(x, labels=x).loss.backward()
    for block in gated.blocks:
        grad = block.mixer.gate.proj.weight.grad
        assert grad is not None and grad.abs().sum() > 0
    opt = torch.optim.SGD(gated.parameters(), lr=1.0)
    opt.step()
    assert all(block.mixer.gate.proj.weight.any() for block in gated.blocks)


def test_other_mixers_are_left_alone():
    source = tiny(mixer="gla,attn", options={})
    gated = retrofit_gate(source)
    assert gated.config.schedule() == ["gla", "gated_attn"]
    assert type(gated.blocks[0].mixer) is type(source.blocks[0].mixer)
    for (name, a), (_, b) in zip(source.blocks[0].state_dict().items(), gated.blocks[0].state_dict().items(),
                                 strict=True):
        assert torch.equal(a, b), name
    x = torch.randint(0, 120, (1, 9))
    assert torch.equal(source(x).logits, gated(x).logits)


@pytest.mark.parametrize("mixer, options, message", [
    ("gla", {}, "no attn layer"),
    ("attn,gated_attn", {}, "already has gated_attn"),
    ("attn", {"attn": {"no_output": True}}, "no o_proj"),
])
def test_refused(mixer, options, message):
    config = ModelConfig(vocab_size=50, d_model=32, n_layers=2, n_heads=4, mixer=mixer, mixer_options=options)
    with pytest.raises(ConfigError, match=message):
        gated_config(config)


def test_unknown_granularity_is_refused():
    with pytest.raises(ConfigError, match="granularity 'tokenwise': choose elementwise or headwise"):
        gated_config(ModelConfig(), "tokenwise")
