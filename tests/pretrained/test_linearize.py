"""Linearization: every attention layer becomes the target with the same q/k/v/o weights, every other weight is
copied bit for bit, and the linearized model decodes token by token at a constant state size."""
import pytest
import torch

from gatelab.analysis.state import state_bytes
from gatelab.config import ConfigError
from gatelab.models.lm import DecoderLM, ModelConfig
from gatelab.pretrained.linearize import TARGETS, linearize

TARGET_NAMES = list(TARGETS)


def teacher(mixer="attn", **attn) -> DecoderLM:
    options = {"attn": {"n_kv_heads": 2, "qk_norm": True, **attn}, "gdn": {"head_dim": 8}}
    cfg = ModelConfig(vocab_size=100, d_model=32, n_layers=2, n_heads=4, mixer=mixer, mixer_options=options)
    return DecoderLM(cfg).double().eval()


@pytest.mark.parametrize("to", TARGET_NAMES)
def test_every_weight_is_kept_and_attention_weights_are_reused(to):
    model = teacher("gdn,attn")
    student = linearize(model, to)
    key = TARGETS[to][0]
    assert student.config.mixer == f"gdn,{key}"
    assert type(student.blocks[1].mixer).__name__ != type(model.blocks[1].mixer).__name__
    before, after = model.state_dict(), student.state_dict()
    assert before.keys() == after.keys()
    for name, tensor in before.items():
        assert after[name].dtype == tensor.dtype and torch.equal(after[name], tensor), name
    mixer = student.blocks[1].mixer
    for proj in ("q_proj", "k_proj", "v_proj", "o_proj"):
        assert torch.equal(getattr(mixer, proj).weight, before[f"blocks.1.mixer.{proj}.weight"])
    assert sum(p.numel() for p in student.parameters()) == sum(p.numel() for p in model.parameters())
    assert not student.training
    assert student.blocks[1].mixer.config.n_kv_heads == 2 and student.blocks[1].mixer.config.qk_norm


def test_targets_are_the_paper_mixtures():
    model = teacher()
    liger, gla, swa, linear = (linearize(model, to).blocks[0].mixer.config for to in TARGET_NAMES)
    assert (liger.mix, liger.window, liger.recurrence, liger.gate_logit_normalizer) == (0.5, 64, "gla", 16.0)
    assert (gla.mix, gla.recurrence) == (0.0, "gla")
    assert swa.window == 64 and not hasattr(swa, "mix")
    assert (linear.mix, linear.recurrence) == (0.0, "linear")
    assert linearize(model, "liger", window=8).blocks[0].mixer.config.window == 8


@pytest.mark.parametrize("to", TARGET_NAMES)
def test_linearized_model_decodes_step_by_step_at_constant_state(to):
    student = linearize(teacher(), to, window=4)
    ids = torch.randint(0, 100, (2, 13))
    whole = student(ids).logits
    out = student(ids[:, :5])
    logits, states, sizes = [out.logits], out.states, []
    for t in range(5, 13):
        out = student(ids[:, t:t + 1], states=states, step=True)
        logits.append(out.logits)
        states = out.states
        sizes.append(state_bytes(states))
    torch.testing.assert_close(torch.cat(logits, 1), whole)
    assert len(set(sizes)) == 1 and sizes[0] > 0
    assert student.state_size(13) == student.state_size(1000)


def test_grouped_query_recurrence_repeats_the_kv_heads_as_the_paper_code():
    """A GQA model's recurrent branch equals that of the same model with every kv head's weights repeated over its
    query heads (Liger's ``repeat_kv``)."""
    model = teacher()
    gqa = linearize(model, "gla")
    full_cfg = dict(gqa.config.mixer_options["liger"], n_kv_heads=4)
    full = DecoderLM(ModelConfig(**{**vars(gqa.config), "mixer_options": {"liger": full_cfg}})).double().eval()
    state = gqa.state_dict()
    for i in range(2):
        for proj in ("k_proj", "v_proj"):
            w = state[f"blocks.{i}.mixer.{proj}.weight"].view(2, 8, 32)        # (Hkv, D, d_model)
            state[f"blocks.{i}.mixer.{proj}.weight"] = w.repeat_interleave(2, dim=0).reshape(32, 32)
    full.load_state_dict(state)
    ids = torch.randint(0, 100, (2, 9))
    torch.testing.assert_close(gqa(ids).logits, full(ids).logits)


def test_refusals_name_the_problem():
    with pytest.raises(ConfigError, match="unknown linearization target 'mamba'; choose one of liger, gla"):
        linearize(teacher(), "mamba")
    with pytest.raises(ConfigError, match="replaces softmax attention .* layers are gated_attn"):
        linearize(teacher("gated_attn"), "liger")
    with pytest.raises(ConfigError, match="already has 'swa' layers"):
        linearize(teacher("swa,attn"), "swa")
    with pytest.raises(ConfigError, match="qk_merged=true .* only --to swa"):
        linearize(teacher(qk_merged=True, rope=False, qk_norm=False, n_kv_heads=None), "liger")
