"""model.loop: weight-tied blocks applied loop times (Universal Transformer / AlgoFormer's looped transformer)."""
import pytest
import torch

from gatelab.config import ConfigError, from_dict
from gatelab.models import DecoderLM, ModelConfig
from gatelab.models.classifier import ClassifierConfig, SequenceClassifier
from gatelab.models.forecaster import Forecaster, ForecasterConfig


def tiny(mixer="attn", **kw) -> DecoderLM:
    kw = {"n_layers": 2, **kw}
    return DecoderLM(ModelConfig(vocab_size=50, d_model=16, n_heads=2, mixer=mixer, **kw)).double()


def by_hand(model: DecoderLM, ids: torch.Tensor, order: list[int]) -> torch.Tensor:
    """The logits of running ``model.blocks`` in ``order`` with no states."""
    x, bounds = model.embed(ids), model.layer_lower_bounds()
    for i in order:
        x, _ = model.blocks[i](x, lower_bound=bounds[i])
    return model.head(model.norm(x))


def test_loop_runs_the_stack_again_with_the_same_weights():
    model = tiny(loop=3)
    ids = torch.randint(0, 50, (2, 7))
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, by_hand(model, ids, [0, 1] * 3))
        assert not torch.allclose(model(ids).logits, by_hand(model, ids, [0, 1]))


def test_algoformer_pre_loop_post_order():
    cfg = ModelConfig(n_layers=4, loop=3, loop_pre=1, loop_post=1)
    assert cfg.layer_order() == [0, 1, 2, 1, 2, 1, 2, 3]
    model = tiny(n_layers=4, loop=2, loop_pre=1, loop_post=2)
    ids = torch.randint(0, 50, (1, 6))
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, by_hand(model, ids, [0, 1, 1, 2, 3]))


def test_loop_keeps_parameters_keys_and_seeded_init():
    torch.manual_seed(0)
    plain = tiny()
    torch.manual_seed(0)
    looped = tiny(loop=4)
    assert looped.num_params() == plain.num_params()
    assert list(looped.state_dict()) == list(plain.state_dict())
    for (name, a), b in zip(plain.state_dict().items(), looped.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert looped.state_size(10) == 4 * plain.state_size(10)


@pytest.mark.parametrize("mixer,kw", [("attn", {}), ("gla", {"short_conv": 3}), ("hgrn2,gated_attn", {}),
                                      ("gdn", {"n_layers": 3, "loop_pre": 1, "loop_post": 1})])
def test_cached_decoding_equals_full_forward_with_a_loop(mixer, kw):
    model = tiny(mixer, loop=2, **kw)
    ids = torch.randint(0, 50, (2, 10))
    with torch.no_grad():
        full = model(ids).logits
        out = model(ids[:, :4])
        assert len(out.states) == len(model.config.layer_order())
        logits, states = [out.logits], out.states
        for t in range(4, 10):
            out = model(ids[:, t:t + 1], states=states, step=True)
            logits.append(out.logits)
            states = out.states
    torch.testing.assert_close(torch.cat(logits, 1), full, atol=1e-10, rtol=1e-10)
    assert len(model.init_states(2)) == len(model.config.layer_order())


def test_generate_with_a_loop_matches_the_full_forward():
    model = tiny("attn", loop=2).float()
    out = model.generate(torch.randint(0, 50, (1, 3)), max_new_tokens=5)
    with torch.no_grad():
        assert torch.equal(model(out[:, :-1]).logits[:, 2:].argmax(-1), out[:, 3:])


def test_a_bidirectional_classifier_loops_too():
    cfg = ModelConfig(vocab_size=20, d_model=16, n_heads=2, n_layers=1, mixer="gla", bidirectional=True, loop=2)
    model = SequenceClassifier(cfg, ClassifierConfig(), num_classes=3)
    assert model(torch.randint(0, 20, (2, 5))).logits.shape == (2, 3)


@pytest.mark.parametrize("kw,match", [
    ({"loop": 0}, "loop"),
    ({"loop_pre": 1}, "loop_pre=1.*no effect with model.loop=1"),
    ({"loop": 2, "loop_pre": 1, "loop_post": 1}, "at least one of model.n_layers=2"),
    ({"loop": 2, "loop_post": -1}, "loop_post"),
])
def test_bad_loop_configs(kw, match):
    with pytest.raises(ConfigError, match=match):
        tiny(**kw)


def test_loop_is_read_from_a_config_dict():
    assert from_dict(ModelConfig, {"loop": 3}).loop == 3


def test_a_distilling_forecaster_refuses_a_loop():
    cfg = ModelConfig(d_model=16, n_heads=2, n_layers=2, mixer="gla", bidirectional=True, loop=2)
    with pytest.raises(ConfigError, match="distil=true.*model.loop=2"):
        Forecaster(cfg, ForecasterConfig(distil=True), 16, 4, 3, [0])


def test_a_loop_sums_the_auxiliary_losses_of_every_application():
    torch.manual_seed(0)
    model = tiny(n_layers=1, loop=3, channel="moe").train()
    seen = []
    model.blocks[0].channel.register_forward_hook(lambda m, i, o: seen.append(m.aux["balance"].detach()))
    out = model(torch.randint(0, 50, (2, 7)))
    assert len(seen) == 3 and len(set(float(s) for s in seen)) == 3       # the applications differ
    torch.testing.assert_close(out.aux_losses["balance"].detach(), sum(seen))


def test_the_analysis_refuses_a_looped_model():
    from gatelab.analysis.measure import measure

    ids = torch.randint(0, 50, (2, 8))
    with pytest.raises(ConfigError, match="model.loop=2"):
        measure(tiny(loop=2), ids, ids)


def test_collecting_the_auxiliary_losses_clears_every_stack_a_model_holds():
    from gatelab.models.stack import BlockStack

    model = tiny(n_layers=1, loop=2, channel="moe").train()
    model.inner = inner = tiny(n_layers=1, channel="moe").train()   # a stack inside the stack, as Gateformer's
    inner.encode(inner.embed(torch.randint(0, 50, (2, 7))))          # encoded, not yet collected
    assert inner.aux_losses()
    model.collect_aux()
    assert all(not m.aux_losses() for m in model.modules() if isinstance(m, BlockStack))
