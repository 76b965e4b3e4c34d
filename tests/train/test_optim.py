"""Optimiser groups: which parameters get weight decay."""
import copy

import pytest
from torch import nn

from gatelab.models import DecoderLM, ModelConfig
from gatelab.registry import MIXERS
from gatelab.train.optim import OptimConfig, build_optimizer, marked_no_weight_decay

# The parameters each mixer exempts from weight decay besides its 1-D ones, as its paper's official code marks them
# (``_no_weight_decay``): mamba_ssm's Mamba and Mamba2, flash-linear-attention's GatedDeltaNet. The others' official
# code (flash-linear-attention's GLA, HGRN2, RetNet, Based, DeltaNet, linear attention; Zoology's BaseConv) marks
# none. gated_attn's input-independent gate logits are a bias (variant below).
EXEMPT = {
    "atlas": set(), "attn": set(), "base_conv": set(), "based": set(), "combiner": set(), "deltanet": set(),
    "flowformer": set(), "fsmn": set(), "gam": set(), "gated_attn": set(), "gdn": {"A_log", "dt_bias"}, "gla": set(),
    "hgrn": set(), "hgrn2": set(), "hornet": set(), "kernel_rpe": {"rel_bias"}, "liger": set(), "linear_attn": set(),
    "lmu": set(), "mamba": {"A_log", "D"}, "mamba2": {"A_log", "dt_bias", "D"}, "mossformer": set(),
    "probsparse": set(), "retnet": set(), "sinkhorn": set(), "swa": set(), "tokenformer": set(), "vig": set(),
}
CASES = [pytest.param(key, {}, EXEMPT[key], id=key) for key in sorted(EXEMPT)] + [
    pytest.param("gated_attn", {"gate_source": "constant"}, {"gate.logits"}, id="gated_attn-constant-gate"),
]


def groups(model: nn.Module) -> tuple[set[str], set[str]]:
    """Names of the parameters in the decayed and in the no-decay group of ``build_optimizer``."""
    opt = build_optimizer(model, OptimConfig(weight_decay=0.1))
    assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.0]
    ids = [{id(p) for p in g["params"]} for g in opt.param_groups]
    names = dict(model.named_parameters())
    return tuple({n for n, p in names.items() if id(p) in group} for group in ids)


def test_every_registered_mixer_has_its_exemptions_listed():
    assert set(EXEMPT) == set(MIXERS.names())


@pytest.mark.parametrize("key,opts,exempt", CASES)
def test_only_one_dimensional_and_marked_parameters_escape_weight_decay(key, opts, exempt):
    mixer = MIXERS.get(key)(16, n_heads=2, **opts)
    assert marked_no_weight_decay(mixer) == exempt
    decayed, plain = groups(mixer)
    assert plain == {n for n, p in mixer.named_parameters() if p.dim() < 2} | exempt
    assert decayed == {n for n, p in mixer.named_parameters()} - plain


def test_mambas_two_dimensional_A_log_gets_no_decay_in_a_model():
    model = DecoderLM(ModelConfig(vocab_size=32, d_model=16, n_heads=2, mixer="mamba"))
    assert model.blocks[0].mixer.A_log.dim() == 2
    decayed, plain = groups(model)
    assert {"blocks.0.mixer.A_log", "blocks.1.mixer.A_log", "blocks.0.mixer.D"} <= plain
    assert "blocks.0.mixer.in_proj.weight" in decayed and "embed.weight" in decayed


def test_marks_survive_copies_and_assigned_loads():
    """The mark lives on the module, so new Parameter objects (deepcopy, load_state_dict(assign=True)) keep it."""
    mixer = MIXERS.get("mamba")(16)
    copied = copy.deepcopy(mixer)
    assert "A_log" in groups(copied)[1]
    copied.load_state_dict({k: v.clone() for k, v in mixer.state_dict().items()}, assign=True)
    assert copied.A_log is not mixer.A_log and "A_log" in groups(copied)[1]


def test_the_mark_of_mamba_ssm_and_fla_on_a_parameter_is_honoured():
    layer = nn.Linear(4, 4)
    layer.weight._no_weight_decay = True
    assert groups(layer) == (set(), {"weight", "bias"})
