"""TokenFormer: Θ as the official code writes it, Pattention, the attention built on four Pattentions, and growth that
keeps the function exactly (layer, mixer, channel mixer and DecoderLM, saved and loaded)."""
import math

import pytest
import torch
import torch.nn.functional as F

from gatelab.config import ConfigError
from gatelab.layers.channel.pattention import Pattention, PattentionFFN, modified_softmax
from gatelab.layers.token.tokenformer import TokenFormer
from gatelab.models import DecoderLM, ModelConfig
from gatelab.ops.softmax_attn import softmax_attention
from gatelab.train.optim import OptimConfig, build_optimizer
from tests.utils import values_outside

THETAS = ["l2_norm_gelu", "gelu_l2_norm", "softmax"]
GELU_THETAS = ["l2_norm_gelu", "gelu_l2_norm"]


def official_theta(s: torch.Tensor, theta: str) -> torch.Tensor:
    """Θ written as the official code's ``nonlinear_norm_func`` (n: the number of slots)."""
    n = s.shape[-1]
    if theta == "softmax":
        e = torch.exp(s)
        return e / torch.norm(e, p=1, dim=-1, keepdim=True) * n
    if theta == "gelu_l2_norm":
        g = F.gelu(s)
        return g / torch.norm(g, p=2, dim=-1, keepdim=True) * math.sqrt(n)
    return F.gelu(s / torch.norm(s, p=2, dim=-1, keepdim=True) * math.sqrt(n))


def pattention(theta="l2_norm_gelu", slots=6, d_in=5, d_out=4, **kw):
    torch.manual_seed(0)
    return Pattention(d_in, d_out, slots, theta=theta, **kw).double()


@pytest.mark.parametrize("theta", THETAS)
def test_theta_and_pattention_are_the_official_formulas(theta):
    s = torch.randn(3, 7, dtype=torch.float64) * 3
    torch.testing.assert_close(modified_softmax(s, theta, 7), official_theta(s, theta), atol=1e-12, rtol=1e-12)
    layer = pattention(theta)
    x = torch.randn(2, 3, 5, dtype=torch.float64)
    expected = official_theta(x @ layer.key_tokens.T, theta) @ layer.value_tokens
    torch.testing.assert_close(layer(x), expected, atol=1e-12, rtol=1e-12)


def test_an_all_zero_input_gives_zero_not_nan():
    layer = pattention()
    assert torch.equal(layer(torch.zeros(1, 5, dtype=torch.float64)), torch.zeros(1, 4, dtype=torch.float64))


def test_mixer_is_attention_between_four_pattentions():
    torch.manual_seed(0)
    mixer = TokenFormer(16, n_heads=2, qkv_slots=5, proj_slots=3, rope=False).double()
    x = torch.randn(2, 7, 16, dtype=torch.float64)
    q, k, v = (p(x).view(2, 7, 2, 8) for p in (mixer.q_proj, mixer.k_proj, mixer.v_proj))
    o, _ = softmax_attention(q, k, v)
    torch.testing.assert_close(mixer(x)[0], mixer.o_proj(o.flatten(2)), atol=1e-12, rtol=1e-12)
    assert [p.n_tokens for p in (mixer.q_proj, mixer.k_proj, mixer.v_proj, mixer.o_proj)] == [5, 5, 5, 3]
    assert TokenFormer(16, n_heads=2).q_proj.n_tokens == 16   # slots default to d_model, as the paper's models


def test_init_is_normal_keys_and_wang_values():
    torch.manual_seed(0)
    layer = PattentionFFN(64, 512, init_n_layers=4).pattention
    assert abs(layer.key_tokens.std().item() / 0.02 - 1) < 0.03
    assert abs(layer.value_tokens.std().item() / (2 / (4 * 8)) - 1) < 0.03


def value_std_ratio(layer: Pattention, n_layers: int, d_model: int) -> float:
    return layer.value_tokens.std().item() / (2 / (n_layers * math.sqrt(d_model)))


def test_value_tokens_follow_the_models_depth_unless_given():
    torch.manual_seed(0)
    cfg = dict(vocab_size=8, d_model=64, n_layers=5, n_heads=2, mixer="tokenformer", channel="pattention")
    model = DecoderLM(ModelConfig(**cfg))
    for layer in (model.blocks[0].mixer.v_proj, model.blocks[4].mixer.q_proj, model.blocks[2].channel.pattention):
        assert abs(value_std_ratio(layer, 5, 64) - 1) < 0.05
    assert model.config.mixer_options == {} and model.blocks[0].mixer.config.init_n_layers == 5
    given = DecoderLM(ModelConfig(**cfg, mixer_options={"tokenformer": {"init_n_layers": 2}},
                                  channel_options={"pattention": {"init_n_layers": 3}}))
    assert abs(value_std_ratio(given.blocks[1].mixer.o_proj, 2, 64) - 1) < 0.05
    assert abs(value_std_ratio(given.blocks[1].channel.pattention, 3, 64) - 1) < 0.05
    alone = TokenFormer(64, n_heads=2)                                      # a layer alone: a one-layer model
    assert alone.config.init_n_layers == 1 and abs(value_std_ratio(alone.k_proj, 1, 64) - 1) < 0.05
    assert PattentionFFN(64).config.init_n_layers == 1


@pytest.mark.parametrize("theta", GELU_THETAS)
def test_growth_keeps_the_output_where_the_official_scale_does_not(theta):
    layer = pattention(theta)
    x = torch.randn(2, 3, 5, dtype=torch.float64)
    before = layer(x)
    layer.grow(4)
    assert layer.n_tokens == 10 and layer.slots == 6
    assert torch.equal(layer.key_tokens[6:], torch.zeros(4, 5, dtype=torch.float64))
    assert layer.value_tokens[6:].abs().min() > 0
    torch.testing.assert_close(layer(x), before, atol=1e-14, rtol=1e-14)
    # the official code scales Θ by the current token count: sqrt(10) in place of sqrt(6) changes the output
    official = official_theta(x @ layer.key_tokens.T, theta) @ layer.value_tokens
    assert (official - before).abs().max() > 1e-3


@pytest.mark.parametrize("theta", GELU_THETAS)
def test_grown_keys_get_gradients_through_their_non_zero_values(theta):
    layer = pattention(theta)
    layer.grow(3)
    x = torch.randn(4, 5, dtype=torch.float64)
    layer(x).square().sum().backward()
    assert layer.key_tokens.grad[6:].abs().min() > 0
    # had the values been zeroed too, neither new keys nor new values would ever move (Θ(0) = 0, Θ'(0) V = 0)
    layer.zero_grad()
    with torch.no_grad():
        layer.value_tokens[6:] = 0
    layer(x).square().sum().backward()
    assert layer.key_tokens.grad[6:].abs().max() == 0 and layer.value_tokens.grad[6:].abs().max() == 0


def test_growth_of_a_softmax_pattention_or_by_a_bad_amount_is_refused():
    with pytest.raises(ConfigError, match="theta='softmax'"):
        pattention("softmax").grow(1)
    pattention("softmax").grow(0)
    for bad in (-1, 1.5, True, "2"):
        with pytest.raises(ConfigError, match="n_new"):
            pattention().grow(bad)


def test_mixer_growth_keeps_outputs_and_records_the_new_shape():
    torch.manual_seed(0)
    mixer = TokenFormer(16, n_heads=2, qkv_slots=4, proj_slots=3, n_kv_heads=1).double()
    x = torch.randn(2, 9, 16, dtype=torch.float64)
    before = mixer(x)[0]
    assert mixer.grow(qkv=2, proj=5) == {"qkv_grown": 2, "proj_grown": 5}
    assert mixer.grow(qkv=1) == {"qkv_grown": 3, "proj_grown": 5}
    assert sum(p.numel() for p in mixer.parameters()) == mixer.expected_num_params()
    assert [p.n_tokens for p in (mixer.q_proj, mixer.k_proj, mixer.v_proj, mixer.o_proj)] == [7, 7, 7, 8]
    torch.testing.assert_close(mixer(x)[0], before, atol=1e-13, rtol=1e-13)
    with pytest.raises(ConfigError, match="proj=-2"):
        mixer.grow(proj=-2)


def test_channel_growth_keeps_outputs():
    torch.manual_seed(0)
    ffn = PattentionFFN(8, 12).double()
    x = torch.randn(3, 8, dtype=torch.float64)
    before = ffn(x)
    assert ffn.grow(5) == {"grown": 5}
    assert ffn.pattention.n_tokens == 17 and ffn.expected_num_params() == 2 * 8 * 17
    torch.testing.assert_close(ffn(x), before, atol=1e-14, rtol=1e-14)


def tiny_model(**kw) -> DecoderLM:
    torch.manual_seed(0)
    cfg = dict(vocab_size=32, d_model=16, n_layers=2, n_heads=2, mixer="tokenformer", channel="pattention",
               mixer_options={"tokenformer": {"qkv_slots": 8, "proj_slots": 6}}, max_seq_len=64)
    return DecoderLM(ModelConfig(**{**cfg, **kw})).double()


def train(model: DecoderLM, steps: int, seed: int = 1) -> torch.optim.Optimizer:
    opt = build_optimizer(model, OptimConfig(lr=1e-2))
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        ids = torch.randint(0, 32, (4, 12), generator=gen)
        loss = model(ids[:, :-1], labels=ids[:, 1:]).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    return opt


def test_decoder_lm_grows_every_pattention_with_identical_logits_and_trains_on():
    model = tiny_model()
    train(model, 3)
    ids = torch.randint(0, 32, (2, 10))
    with torch.no_grad():
        before = model(ids).logits
    n_before = model.num_params()
    assert model.grow(qkv=3, proj=2, ffn=5) is model
    d, slots = 16, (8 + 3, 6 + 2, 4 * 16 + 5)
    assert model.num_params() - n_before == 2 * (3 * 3 * 2 * d + 2 * 2 * d + 5 * 2 * d)
    for block in model.blocks:
        assert block.mixer.q_proj.n_tokens == slots[0] and block.mixer.o_proj.n_tokens == slots[1]
        assert block.channel.pattention.n_tokens == slots[2]
    assert model.config.mixer_options["tokenformer"] == {"qkv_slots": 8, "proj_slots": 6, "qkv_grown": 3,
                                                         "proj_grown": 2}
    assert model.config.channel_options["pattention"] == {"grown": 5}
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, before, atol=1e-12, rtol=1e-12)
    new_keys = model.blocks[0].mixer.q_proj.key_tokens
    assert torch.equal(new_keys[8:], torch.zeros(3, d, dtype=torch.float64))
    train(model, 2, seed=2)   # a rebuilt optimizer moves the grown parameters
    assert model.blocks[0].mixer.q_proj.key_tokens[8:].abs().min() > 0
    assert model.blocks[1].channel.pattention.key_tokens[64:].abs().min() > 0


def test_a_grown_model_saves_and_loads_in_its_grown_shape(tmp_path):
    from gatelab.hf.run import load_run, save_run_model

    model = tiny_model().grow(qkv=2, ffn=3)
    save_run_model(model, tmp_path / "model")
    loaded, _ = load_run(tmp_path / "model")
    assert loaded.model.blocks[0].mixer.v_proj.n_tokens == 10 and loaded.model.blocks[0].mixer.v_proj.slots == 8
    ids = torch.randint(0, 32, (2, 7))
    with torch.no_grad():
        torch.testing.assert_close(loaded.model.double()(ids).logits, model(ids).logits, atol=1e-12, rtol=1e-12)


def test_growing_what_the_model_lacks_is_an_error():
    with pytest.raises(ConfigError, match="no Pattention layer"):
        DecoderLM(ModelConfig(vocab_size=32, d_model=16, n_heads=2)).grow(qkv=1)
    with pytest.raises(ConfigError, match="qkv=1.*no mixer 'tokenformer'"):
        tiny_model(mixer="attn", mixer_options={}).grow(qkv=1)
    with pytest.raises(ConfigError, match="ffn=2.*no channel 'pattention'"):
        tiny_model(channel="swiglu").grow(ffn=2)
    softmax = tiny_model(channel_options={"pattention": {"theta": "softmax"}})
    with pytest.raises(ConfigError, match="ffn=1 with theta='softmax'"):
        softmax.grow(qkv=1, ffn=1)
    assert softmax.blocks[0].mixer.q_proj.n_tokens == 8   # checked before anything grew


MIXER_RANGES = {"qkv_slots": "[1, inf)", "proj_slots": "[1, inf)", "qkv_grown": "[0, inf)",
                "proj_grown": "[0, inf)", "key_std": "(0, inf)", "init_n_layers": "[1, inf)"}
CHANNEL_RANGES = {"d_ff": "[1, inf)", "grown": "[0, inf)", "key_std": "(0, inf)", "init_n_layers": "[1, inf)"}


@pytest.mark.parametrize("name,value", [(n, v) for n, r in MIXER_RANGES.items()
                                        for v in values_outside(r, n not in ("key_std",))])
def test_mixer_options_outside_their_range_are_refused(name, value):
    with pytest.raises(ConfigError, match=name):
        TokenFormer(16, n_heads=2, **{name: value})


@pytest.mark.parametrize("name,value", [(n, v) for n, r in CHANNEL_RANGES.items()
                                        for v in values_outside(r, n not in ("key_std",))])
def test_channel_options_outside_their_range_are_refused(name, value):
    with pytest.raises(ConfigError, match=name):
        PattentionFFN(16, **{name: value})


def test_unknown_theta_and_chains_are_refused():
    with pytest.raises(ConfigError, match="theta.*'l2_norm_gelu'"):
        TokenFormer(16, theta="relu")
    with pytest.raises(ConfigError, match="theta.*'gelu_l2_norm'"):
        PattentionFFN(16, theta="l2")
    with pytest.raises(ConfigError, match="n_chains=2"):
        TokenFormer(16, n_chains=2)


@pytest.mark.parametrize("name", ["qk_merged", "symmetric", "no_value", "no_output"])
def test_the_reductions_of_attn_are_refused(name):
    with pytest.raises(ConfigError, match=f"tokenformer.{name}=True"):
        TokenFormer(16, n_heads=2, **{name: True})


def test_ssa_subsamples_the_keys_between_pattentions():
    torch.manual_seed(0)
    mixer = TokenFormer(16, n_heads=2, qkv_slots=5, proj_slots=3, ssa_rate=0.5).double()
    x = torch.randn(2, 9, 16, dtype=torch.float64)
    mixer.eval()
    full = mixer(x)[0]
    mixer.train()
    torch.manual_seed(1)
    sub = mixer(x)[0]
    assert torch.isfinite(sub).all() and (sub - full).abs().max() > 1e-6
