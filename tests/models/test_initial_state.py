"""Learned initial states (model.learned_initial_state): zeros give the untuned model, a learned one is a state
like any other (prefix + rest, token by token), saved with the model, exempt from weight decay."""
import dataclasses

import pytest
import torch

from gatelab.config import ConfigError
from gatelab.hf import load_run, save_run_model
from gatelab.models import DecoderLM, ModelConfig
from gatelab.models.config import decoder_mixers
from gatelab.train import OptimConfig, build_optimizer

WITH_MEMORY = ["based", "deltanet", "gdn", "gla", "hgrn", "hgrn2", "liger", "linear_attn", "mamba", "mamba2",
               "retnet"]


def config(mixer: str, **kw) -> ModelConfig:
    return ModelConfig(vocab_size=40, d_model=32, n_heads=2, n_layers=2, mixer=mixer, max_seq_len=64, **kw)


@pytest.mark.parametrize("mixer", decoder_mixers())
def test_a_zero_learned_state_is_the_untuned_model_and_a_mixer_without_memory_is_refused(mixer):
    torch.manual_seed(0)
    plain = DecoderLM(config(mixer))
    if mixer not in WITH_MEMORY:
        with pytest.raises(ConfigError, match=rf"model\.learned_initial_state=true, but no mixer of \['{mixer}'\]"):
            DecoderLM(config(mixer, learned_initial_state=True))
        return
    torch.manual_seed(0)
    learned = DecoderLM(config(mixer, learned_initial_state=True))
    assert all(torch.equal(v, learned.state_dict()[k]) for k, v in plain.state_dict().items())  # same init
    x = torch.randint(0, 40, (3, 20))
    assert torch.equal(learned(x).logits, plain(x).logits)


@pytest.mark.parametrize("mixer", ["gla", "hgrn", "mamba", "liger"])
def test_a_learned_state_continues_like_any_state(mixer):
    model = DecoderLM(config(mixer, learned_initial_state=True)).double()
    with torch.no_grad():
        for p in model.initial_states.values():
            p.normal_()
    x = torch.randint(0, 40, (2, 12))
    whole = model(x).logits
    assert (whole - DecoderLM.forward(model, x, states=[None, None]).logits).abs().max() > 1e-3   # it acts
    out = model(x[:, :5])
    rest = model(x[:, 5:], states=out.states).logits
    torch.testing.assert_close(torch.cat([out.logits, rest], 1), whole)
    states, steps = model.init_states(2), []
    for t in range(12):
        o = model(x[:, t:t + 1], states=states, step=True)
        states = o.states
        steps.append(o.logits)
    torch.testing.assert_close(torch.cat(steps, 1), whole)


def test_the_learned_state_is_saved_with_the_model_and_gets_no_weight_decay(tmp_path):
    model = DecoderLM(config("gla", learned_initial_state=True, loop=2))
    assert set(model.initial_states) == {"0", "1", "2", "3"}          # one per application of a block
    with torch.no_grad():
        for p in model.initial_states.values():
            p.normal_()
    opt = build_optimizer(model, OptimConfig())
    plain = {id(p) for p in opt.param_groups[1]["params"]}
    assert all(id(p) in plain for p in model.initial_states.values())
    save_run_model(model, tmp_path / "model")
    loaded, _ = load_run(tmp_path / "model")
    x = torch.randint(0, 40, (2, 10))
    assert torch.equal(loaded.model(x).logits, model(x).logits)
    assert torch.equal(loaded(x).logits, model(x).logits)              # the transformers model starts from it too


def test_the_memory_shape_is_read_without_touching_the_callers_random_state():
    torch.manual_seed(3)
    a = DecoderLM(config("gla"))
    torch.manual_seed(3)
    b = DecoderLM(dataclasses.replace(config("gla"), learned_initial_state=True, tie_embeddings=False))
    torch.manual_seed(3)
    c = DecoderLM(dataclasses.replace(config("gla"), tie_embeddings=False))
    assert torch.equal(a.embed.weight, b.embed.weight) and torch.equal(b.head.weight, c.head.weight)


def test_a_bidirectional_model_has_no_learned_initial_state():
    from gatelab.models.classifier import ClassifierConfig, SequenceClassifier

    with pytest.raises(ConfigError, match="bidirectional model has none"):
        SequenceClassifier(config("gla", bidirectional=True, learned_initial_state=True), ClassifierConfig(), 2)
