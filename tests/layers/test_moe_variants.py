"""``evomoe`` (expert-diversify, the Dense-to-Sparse gate and its schedules) and ``pregated_moe`` (the routing one
block ahead)."""
import math

import pytest
import torch

from gatelab.config import ConfigError
from gatelab.layers.channel.moe import EvoMoE, MoE, PreGatedMoE
from gatelab.layers.channel.moe.evomoe import dense_to_sparse_gate, gumbel_noise, temperature_at
from gatelab.layers.channel.moe.pregated import CARRY_KEY
from tests.layers.test_moe import naive_moe, swiglu_row
from tests.utils import values_outside

D = 8


def evomoe(**options):
    torch.manual_seed(0)
    return EvoMoE(D, 12, **options).double()


def experts_of(layer):
    return layer.experts.w1, layer.experts.w3, layer.experts.w2


# --- EvoMoE: schedules ---------------------------------------------------------------------------------------------

def test_the_temperature_anneals_as_the_code_schedules_it():
    assert temperature_at(0, 2.0, 0.3, 100) == 2.0
    assert temperature_at(50, 2.0, 0.3, 100) == pytest.approx(2.0 * math.sqrt(0.3 / 2.0))
    assert temperature_at(100, 2.0, 0.3, 100) == pytest.approx(0.3) and temperature_at(500, 2.0, 0.3, 100) == 0.3
    assert temperature_at(50, 2.0, 0.3, 100, "linear") == pytest.approx(1.15)
    assert temperature_at(300, 2.0, 0.3, 100, "linear") == 0.3


def test_on_train_step_sets_the_temperature_from_the_step_counting_after_the_diversify_stage():
    layer = evomoe(diversify_steps=10, anneal_steps=40)
    layer.on_train_step(5, 100)
    assert layer.temperature == 2.0 and not layer.spawned
    layer.on_train_step(30, 100)
    assert layer.temperature == pytest.approx(temperature_at(20, 2.0, 0.3, 40)) and layer.spawned
    layer.on_train_step(99, 100)
    assert layer.temperature == pytest.approx(0.3) and layer.stats()["temperature"] == layer.temperature
    default = evomoe()                                                  # 10% and 50% of max_steps
    assert default.stages(200) == (20, 100)


def test_a_resumed_run_equals_an_uninterrupted_one():
    """Stepping 0..29 and jumping to step 29 (a resumed run, before or after its spawn) give the same layer, given
    the same state of torch's generator at the spawn (a run's checkpoint keeps it)."""
    walked, jumped = evomoe(diversify_steps=10), evomoe(diversify_steps=10)
    for step in range(30):
        if step == 10:
            torch.manual_seed(1)
        walked.on_train_step(step, 100)
    torch.manual_seed(1)
    jumped.on_train_step(29, 100)
    assert walked.temperature == jumped.temperature
    for a, b in zip(walked.state_dict().values(), jumped.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    resumed = evomoe(diversify_steps=10)
    resumed.load_state_dict(walked.state_dict())
    resumed.on_train_step(30, 100)                                       # spawned already: no second spawn
    assert all(torch.equal(a, b) for a, b in zip(experts_of(resumed), experts_of(walked), strict=True))


# --- EvoMoE: expert-diversify --------------------------------------------------------------------------------------

def test_the_diversify_stage_trains_expert_zero_alone():
    layer = evomoe(diversify_steps=5)
    layer.on_train_step(0, 100)
    x = torch.randn(2, 4, D, dtype=torch.float64)
    y = layer(x)
    w1, w3, w2 = experts_of(layer)
    expected = torch.stack([swiglu_row(row, w1[0], w3[0], w2[0]) for row in x.reshape(-1, D)]).view_as(x)
    torch.testing.assert_close(y, expected, atol=1e-12, rtol=1e-12)
    assert layer.aux == {} and layer.stats()["experts_per_token"] == 1.0
    y.square().sum().backward()
    assert w1.grad[0].abs().max() > 0 and (w1.grad[1:] == 0).all() and layer.router.proj.weight.grad is None


def test_the_spawn_makes_each_expert_a_masked_copy_of_expert_zero():
    layer = evomoe(n_experts=4, diversify_steps=3, diversify_mask_ratio=0.25)
    before = [w.detach().clone() for w in experts_of(layer)]
    torch.manual_seed(7)
    assert layer.on_train_step(2, 100) == []
    assert layer.on_train_step(3, 100) == list(experts_of(layer))
    for w, old in zip(experts_of(layer), before, strict=True):
        assert torch.equal(w[0], old[0])                                 # the base expert is kept
        for e in range(1, 4):
            kept = w[e] != 0
            assert torch.equal(w[e], old[0] * kept)                      # a masked copy of expert 0
            assert 0.6 < kept.double().mean() < 0.9                      # about 1 - 0.25 of it kept
        assert not torch.equal(w[1], w[2])
    again = evomoe(n_experts=4, diversify_steps=3, diversify_mask_ratio=0.25)
    torch.manual_seed(7)
    again.on_train_step(3, 100)
    assert all(torch.equal(a, b) for a, b in zip(experts_of(again), experts_of(layer), strict=True))


# --- EvoMoE: the Dense-to-Sparse gate ------------------------------------------------------------------------------

def test_the_gate_is_dense_at_a_high_temperature():
    logits, noise = torch.randn(20, 8, dtype=torch.float64), gumbel_noise(torch.zeros(20, 8, dtype=torch.float64))
    mask, weights = dense_to_sparse_gate(logits, noise, tau=1000.0, threshold=0.001)
    assert mask.all()
    torch.testing.assert_close(weights, logits.softmax(-1))


def test_at_the_end_temperature_the_gate_is_its_sparse_rule():
    """With tau at tau_min (small here), the threshold mask is the hard one: each token's argmax of logits + noise,
    weighted by its softmax probability, as with the code's hard Gumbel switch. Exactly so where the runner-up is
    further than tau * ln(1 / threshold) behind; a closer runner-up joins the argmax."""
    layer = evomoe(diversify_steps=0, anneal_steps=10, tau_min=0.005)
    layer.on_train_step(10, 100)
    assert layer.temperature == pytest.approx(0.005)
    torch.manual_seed(1)
    logits = torch.randn(50, 8, dtype=torch.float64)
    noise = gumbel_noise(logits)
    soft_mask, soft_weights = dense_to_sparse_gate(logits, noise, layer.temperature, 0.001)
    hard_mask, hard_weights = dense_to_sparse_gate(logits, noise, layer.temperature, 0.001, hard=True)
    chosen = (logits + noise).argmax(-1)
    assert (hard_mask.sum(-1) == 1).all() and torch.equal(hard_mask.nonzero()[:, 1], chosen)
    torch.testing.assert_close(hard_weights.sum(-1), logits.softmax(-1).gather(1, chosen[:, None])[:, 0])
    top2 = (logits + noise).topk(2, dim=-1).values
    apart = top2[:, 0] - top2[:, 1] > layer.temperature * math.log(1 / 0.001) + 1e-9
    assert apart.sum() >= 40 and (soft_mask >= hard_mask).all()
    assert torch.equal(soft_mask[apart], hard_mask[apart]) and torch.equal(soft_weights[apart], hard_weights[apart])


@pytest.mark.parametrize("hard", [False, True])
def test_a_training_forward_equals_the_gate_applied_token_by_token(hard):
    layer = evomoe(diversify_steps=0, anneal_steps=10, hard_after=0 if hard else None)
    layer.on_train_step(3, 100)
    x = torch.randn(2, 5, D, dtype=torch.float64)
    flat = x.reshape(-1, D)
    logits = flat @ layer.router.proj.weight.T
    torch.manual_seed(3)
    y = layer(x)
    torch.manual_seed(3)
    mask, weights = dense_to_sparse_gate(logits, gumbel_noise(logits), layer.temperature, 0.001, hard)
    w1, w3, w2 = experts_of(layer)
    rows = [sum(weights[n, e] * swiglu_row(flat[n], w1[e], w3[e], w2[e]) for e in mask[n].nonzero()[:, 0].tolist())
            for n in range(flat.shape[0])]
    torch.testing.assert_close(y, torch.stack(rows).view_as(x), atol=1e-12, rtol=1e-12)
    assert layer.stats()["experts_per_token"] == pytest.approx(mask.sum().item() / flat.shape[0])
    assert set(layer.aux) == {"balance"} and layer.aux["balance"].requires_grad


def test_eval_routes_each_token_to_its_top1_expert_weighted_by_its_probability():
    layer = evomoe(diversify_steps=0).eval()
    x = torch.randn(2, 5, D, dtype=torch.float64)
    flat = x.reshape(-1, D)
    probs = (flat @ layer.router.proj.weight.T).softmax(-1)
    w1, w3, w2 = experts_of(layer)
    rows = [probs[n].max() * swiglu_row(flat[n], w1[e], w3[e], w2[e]) for n, e in enumerate(probs.argmax(-1).tolist())]
    torch.testing.assert_close(layer(x), torch.stack(rows).view_as(x), atol=1e-12, rtol=1e-12)
    assert layer.aux == {} and layer.stats()["experts_per_token"] == 1.0


def test_evomoe_parameter_counts():
    layer = EvoMoE(16)
    assert layer.d_ff == 48 and sum(p.numel() for p in layer.parameters()) == layer.expected_num_params()
    assert layer.active_params() == 16 * 8 + 3 * 16 * 48


@pytest.mark.parametrize(("options", "field"), [
    ({"tau_min": 3.0}, "tau_min"), ({"threshold": 0.0}, "threshold"), ({"diversify_mask_ratio": 1.0},
                                                                      "diversify_mask_ratio"),
    ({"anneal_steps": 0}, "anneal_steps"), ({"anneal_schedule": "cosine"}, "anneal_schedule"),
    ({"hard_after": -1}, "hard_after"), ({"top_k": 2}, "top_k"),
])
def test_evomoe_bad_options_name_the_field(options, field):
    with pytest.raises(ConfigError, match=field):
        EvoMoE(16, **options)


def test_every_numeric_evomoe_option_rejects_values_outside_its_range():
    defaults = EvoMoE.Config(d_model=4, diversify_steps=1, anneal_steps=1, hard_after=1)
    for field, interval in EvoMoE.Config.RANGES.items():
        if field == "d_model":
            continue
        integer = isinstance(getattr(defaults, field), int)
        for value in values_outside(interval, integer):
            with pytest.raises(ConfigError, match=field):
                EvoMoE(16, **{field: value})


# --- Pre-gated MoE ---------------------------------------------------------------------------------------------------

def pregated(**options):
    return PreGatedMoE(D, 12, **options).double()


def test_block_i_routes_block_i_plus_1_with_an_ordinary_router_fed_block_i_input():
    torch.manual_seed(0)
    first, second = pregated(), pregated()
    x1, x2 = torch.randn(2, 5, D, dtype=torch.float64), torch.randn(2, 5, D, dtype=torch.float64)
    carry = {}
    y1 = first(x1, carry)
    torch.testing.assert_close(y1, naive_moe(first, x1), atol=1e-10, rtol=1e-10)   # the first block: own gate
    y2 = second(x2, carry)
    ordinary = MoE(D, 12).double()                                        # an ordinary router fed block 1's input
    ordinary.router.load_state_dict(first.pre_gate.state_dict())
    logits = ordinary.router(x1.reshape(-1, D)).logits
    torch.testing.assert_close(y2, naive_moe(second, x2, logits=logits), atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(carry[CARRY_KEY], x2.reshape(-1, D) @ second.pre_gate.proj.weight.T)
    (y2.sum() + second.aux["balance"]).backward()
    assert first.pre_gate.proj.weight.grad.abs().max() > 0 and second.router.proj.weight.grad is None


def test_a_pregated_layer_on_its_own_routes_with_its_own_gate():
    torch.manual_seed(0)
    layer = pregated(top_k=1, normalize_topk=False, shared_expert=True)
    x = torch.randn(2, 5, D, dtype=torch.float64)
    torch.testing.assert_close(layer(x), naive_moe(layer, x), atol=1e-10, rtol=1e-10)
    assert set(layer.aux) == {"balance", "z"} and layer.stats()["experts_per_token"] == 1.0


def test_decoding_token_by_token_routes_as_the_full_forward():
    torch.manual_seed(0)
    blocks = [pregated().eval() for _ in range(3)]

    def run(x):
        carry = {}
        for block in blocks:
            x = x + block(x, carry)
        return x
    x = torch.randn(2, 6, D, dtype=torch.float64)
    torch.testing.assert_close(run(x), torch.cat([run(x[:, t:t + 1]) for t in range(6)], 1), atol=1e-12, rtol=1e-12)


def test_routing_of_another_shape_in_the_carry_is_an_error():
    torch.manual_seed(0)
    carry = {}
    PreGatedMoE(D, 12, n_experts=4)(torch.randn(1, 3, D), carry)
    with pytest.raises(ConfigError, match="n_experts"):
        PreGatedMoE(D, 12, n_experts=8)(torch.randn(1, 3, D), carry)


def test_pregated_parameter_counts():
    layer = PreGatedMoE(16, 24)
    assert sum(p.numel() for p in layer.parameters()) == layer.expected_num_params()
    assert layer.active_params() == MoE(16, 24).active_params() and layer.uses_carry
    with pytest.raises(ConfigError, match="top_k"):
        PreGatedMoE(16, top_k=9)
