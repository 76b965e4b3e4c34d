"""Chain-of-Model DecoderLM: the first k chains of the full model are the sub-model of k chains, exactly."""
import pytest
import torch

from gatelab.config import ConfigError
from gatelab.models import DecoderLM, ModelConfig

CONFIGS = {
    "attn": dict(mixer="attn"),
    "hybrid": dict(mixer="gated_attn,swa", norm="layernorm", tie_embeddings=False, short_conv=3, d_ff=48,
                   mixer_options={"gated_attn": {"n_kv_heads": 4, "gate_granularity": "headwise"},
                                  "swa": {"window": 4}}),
}


def chain_model(name: str, chains: int = 4, **kw) -> DecoderLM:
    torch.manual_seed(0)
    options = dict(vocab_size=40, d_model=32, n_layers=2, n_heads=8, channel="chain", chains=chains)
    cfg = ModelConfig(**{**options, **CONFIGS[name], **kw})
    return DecoderLM(cfg).double().eval()


def run(model: DecoderLM, ids: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """Each block's output, the final norm's output and the logits."""
    seen = []
    hooks = [m.register_forward_hook(lambda mod, args, out: seen.append(out[0] if isinstance(out, tuple) else out))
             for m in [*model.blocks, model.norm]]
    with torch.no_grad():
        logits = model(ids).logits
    for h in hooks:
        h.remove()
    return seen[:-1], seen[-1], logits


@pytest.mark.parametrize("name", CONFIGS)
def test_submodel_hidden_states_are_the_first_chains_of_the_full_model(name):
    model = chain_model(name)
    ids = torch.randint(0, 40, (2, 9))
    hidden, normed, logits = run(model, ids)
    for k in range(1, 5):
        sub = model.submodel(k)
        width = 8 * k
        assert sub.config.d_model == width and sub.config.chains == k and sub.config.n_heads == 2 * k
        sub_hidden, sub_normed, sub_logits = run(sub, ids)
        for h, s in zip(hidden, sub_hidden, strict=True):
            torch.testing.assert_close(s, h[..., :width], atol=1e-10, rtol=1e-10)
        torch.testing.assert_close(sub_normed, normed[..., :width], atol=1e-10, rtol=1e-10)
        expected = normed[..., :width] @ model.head.weight[:, :width].T  # the full head on the first k chains
        torch.testing.assert_close(sub_logits, expected, atol=1e-10, rtol=1e-10)
        if k < 4:
            assert not torch.allclose(sub_logits, logits)
    torch.testing.assert_close(model.submodel(4)(ids).logits, logits, atol=0, rtol=0)


def test_submodel_is_a_copy_with_its_share_of_the_parameters():
    model = chain_model("attn")
    sub = model.submodel(2)
    assert sub.head.weight is sub.embed.weight  # still tied
    d, v, d_ff = 16, 40, sub.blocks[0].channel.d_ff
    assert d_ff == model.blocks[0].channel.d_ff // 2
    per_layer = 4 * d * d * 3 // 4 + 3 * d * d_ff * 3 // 4 + 2 * d   # attention, chain FFN (k = 2 chains), norms
    assert sub.num_params() == v * d + 2 * per_layer + d
    with torch.no_grad():
        sub.embed.weight.zero_()
    assert model.embed.weight.abs().amin() > 0


def test_chain_model_trains_and_a_submodel_generates_as_its_full_forward():
    model = chain_model("hybrid").train()
    ids = torch.randint(0, 40, (2, 9))
    out = model(ids, labels=ids)
    out.loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    sub = model.eval().submodel(3)
    tokens = sub.generate(ids[:, :4], max_new_tokens=5)
    assert tokens.shape == (2, 9) and torch.equal(tokens[:, :4], ids[:, :4])
    with torch.no_grad():
        assert torch.equal(sub(tokens[:, :-1]).logits[:, 3:].argmax(-1), tokens[:, 4:])


@pytest.mark.parametrize("k", [0, 5, 2.0, True, "2"])
def test_submodel_refuses_a_chain_count_outside_the_model(k):
    with pytest.raises(ConfigError, match=r"from 1 to model.chains=4"):
        chain_model("attn").submodel(k)


@pytest.mark.parametrize(("changes", "match"), [
    ({"chains": 3}, r"model.d_model=32 is not divisible by model.chains=3"),
    ({"n_heads": 2}, r"model.n_heads=2 is not divisible by model.chains=4"),
    ({"mixer_options": {"attn": {"n_kv_heads": 2}}}, r"model.mixer_options.attn.n_kv_heads=2 is not divisible"),
    ({"mixer_options": {"attn": {"n_chains": 2}}}, r"set model.chains instead"),
    ({"d_ff": 30}, r"model.d_ff=30 is not divisible by model.chains=4"),
    ({"channel": "swiglu"}, r"model.channel swiglu does not split into chains; with chains > 1 use chain"),
    ({"mixer": "gla,attn"}, r"model.mixer gla does not split into chains; with chains > 1 use attn or gated_attn"),
    ({"chains": 0}, r"chains=0 is out of range"),
])
def test_bad_chain_configs(changes, match):
    with pytest.raises(ConfigError, match=match):
        chain_model("attn", **changes)


def test_one_chain_model_is_the_plain_model():
    plain = DecoderLM(ModelConfig(vocab_size=40, d_model=32, n_heads=8, channel="none"))
    assert plain.submodel(1).num_params() == plain.num_params()
    assert type(plain.norm) is torch.nn.RMSNorm and type(plain.blocks[0].mixer.q_proj) is torch.nn.Linear
    assert chain_model("attn", chains=2, channel="none").num_params() < plain.num_params()
