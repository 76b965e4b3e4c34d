"""``moe``: the router, its losses, the grouped dispatch and the capacity rule against per-token references."""
import math

import pytest
import torch
import torch.nn.functional as F

from gatelab.config import ConfigError
from gatelab.layers.channel import SwiGLU
from gatelab.layers.channel.moe import MoE
from gatelab.layers.channel.moe.dispatch import (
    Slots,
    grouped_swiglu,
    grouped_swiglu_reference,
    within_capacity,
    within_capacity_reference,
)
from gatelab.layers.channel.moe.router import balance_loss, top_k_routing, z_loss
from gatelab.registry import CHANNEL_MIXERS
from tests.utils import values_outside

D = 8


def swiglu_row(x, w1, w3, w2):
    """One SwiGLU expert on one token ``x [d]``."""
    return w2 @ (F.silu(w1 @ x) * (w3 @ x))


def naive_top_k(logits_row, top_k, normalize):
    """A token's chosen experts (most probable first, ties to the lower index) and their weights."""
    probs = logits_row.softmax(-1)
    chosen = sorted(range(probs.numel()), key=lambda e: (-probs[e].item(), e))[:top_k]
    weights = probs[chosen]
    return chosen, weights / weights.sum() if normalize else weights


def naive_moe(layer, x, logits=None):
    """The layer's output token by token: the weighted sum of exactly the token's chosen experts (+ shared).
    ``logits [N, E]`` replaces the layer's own router (a pre-gated block)."""
    cfg, ex = layer.config, layer.experts
    flat = x.reshape(-1, x.shape[-1])
    rows = []
    for n in range(flat.shape[0]):
        row_logits = flat[n] @ layer.router.proj.weight.T if logits is None else logits[n]
        chosen, weights = naive_top_k(row_logits, cfg.top_k, cfg.normalize_topk)
        y = sum(w * swiglu_row(flat[n], ex.w1[e], ex.w3[e], ex.w2[e]) for e, w in zip(chosen, weights, strict=True))
        rows.append(y + layer.shared(flat[n]) if layer.shared is not None else y)
    return torch.stack(rows).view_as(x)


def moe(**options):
    torch.manual_seed(0)
    return MoE(D, 12, **options).double()


@pytest.mark.parametrize("options", [{}, {"top_k": 1, "normalize_topk": False}, {"top_k": 3, "n_experts": 4},
                                     {"shared_expert": True}, {"normalize_topk": False}])
def test_moe_equals_a_per_token_loop_over_exactly_the_chosen_experts_with_gradients(options):
    layer = moe(**options)
    x = torch.randn(3, 7, D, dtype=torch.float64, requires_grad=True)
    r = torch.randn(3, 7, D, dtype=torch.float64)
    y, expected = layer(x), naive_moe(layer, x)
    torch.testing.assert_close(y, expected, atol=1e-10, rtol=1e-10)
    params = [x, *layer.parameters()]
    grads = torch.autograd.grad((y * r).sum(), params)
    expected_grads = torch.autograd.grad((expected * r).sum(), params)
    for name, g, e in zip(["x", *dict(layer.named_parameters())], grads, expected_grads, strict=True):
        torch.testing.assert_close(g, e, atol=1e-10, rtol=1e-10, msg=name)


def test_grouped_dispatch_equals_the_slot_by_slot_reference_with_gradients():
    torch.manual_seed(0)
    N, E, f, S = 10, 4, 6, 17
    x = torch.randn(N, D, dtype=torch.float64, requires_grad=True)
    w1, w3 = (torch.randn(E, f, D, dtype=torch.float64, requires_grad=True) for _ in range(2))
    w2 = torch.randn(E, D, f, dtype=torch.float64, requires_grad=True)
    weight = torch.rand(S, dtype=torch.float64, requires_grad=True)
    token, expert = torch.randint(0, N - 1, (S,)), torch.randint(0, E - 1, (S,))  # token N-1, expert E-1: none
    slots = Slots(token, expert, weight)
    y, expected = grouped_swiglu(x, slots, w1, w3, w2), grouped_swiglu_reference(x, slots, w1, w3, w2)
    torch.testing.assert_close(y, expected, atol=1e-10, rtol=1e-10)
    assert (y[N - 1] == 0).all()
    r = torch.randn_like(y)
    for g, e in zip(torch.autograd.grad((y * r).sum(), [x, w1, w3, w2, weight]),
                    torch.autograd.grad((expected * r).sum(), [x, w1, w3, w2, weight]), strict=True):
        torch.testing.assert_close(g, e, atol=1e-10, rtol=1e-10)


def test_one_expert_top1_is_the_dense_swiglu_with_the_same_weights():
    torch.manual_seed(0)
    dense = SwiGLU(D, 12).double()
    layer = MoE(D, 12, n_experts=1, top_k=1).double()
    with torch.no_grad():
        layer.experts.w1[0], layer.experts.w3[0] = dense.w1.weight, dense.w3.weight
        layer.experts.w2[0] = dense.w2.weight
    x = torch.randn(2, 5, D, dtype=torch.float64)
    torch.testing.assert_close(layer(x), dense(x), atol=1e-12, rtol=1e-12)
    layer.eval()
    torch.testing.assert_close(layer(x), dense(x), atol=1e-12, rtol=1e-12)


def test_balance_loss_is_one_under_uniform_routing_and_sends_gradient_to_the_router():
    E, N = 4, 8
    uniform = torch.full((N, E), 1 / E, dtype=torch.float64)
    balanced = torch.arange(N * 2).view(N, 2) % E                     # every expert takes N*2/E slots
    assert balance_loss(uniform, balanced).item() == pytest.approx(1.0, abs=1e-15)
    layer = moe(n_experts=E, balance_coef=0.5)
    with torch.no_grad():
        layer.router.proj.weight.zero_()                               # uniform probabilities, any top-k
    layer(torch.randn(2, N, D, dtype=torch.float64))
    assert layer.aux["balance"].item() == pytest.approx(0.5, abs=1e-15)
    skewed = moe(n_experts=E)
    with torch.no_grad():
        skewed.router.proj.weight.mul_(20)
    skewed(torch.randn(4, N, D, dtype=torch.float64))
    assert skewed.aux["balance"].item() > 0.01
    skewed.aux["balance"].backward()
    grad = skewed.router.proj.weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().max() > 0


def test_z_loss_is_the_mean_squared_logsumexp_and_reaches_the_router():
    layer = moe(z_coef=0.25)
    x = torch.randn(2, 5, D, dtype=torch.float64)
    layer(x)
    logits = x.reshape(-1, D) @ layer.router.proj.weight.T
    expected = 0.25 * torch.stack([torch.log(torch.exp(row).sum()) ** 2 for row in logits]).mean()
    torch.testing.assert_close(layer.aux["z"], expected, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(z_loss(logits), expected / 0.25, atol=1e-12, rtol=1e-12)
    layer.aux["z"].backward()
    assert layer.router.proj.weight.grad.abs().max() > 0


def test_the_output_loss_alone_trains_the_router():
    layer = moe()
    layer(torch.randn(2, 5, D, dtype=torch.float64)).square().sum().backward()
    assert layer.router.proj.weight.grad.abs().max() > 0 and torch.isfinite(layer.router.proj.weight.grad).all()


def test_aux_holds_both_losses_in_training_and_nothing_in_eval():
    layer = moe()
    x = torch.randn(2, 5, D, dtype=torch.float64)
    layer(x)
    assert set(layer.aux) == {"balance", "z"}
    layer.eval()
    layer(x)
    assert layer.aux == {}


def test_capacity_drops_are_counted_and_a_fully_dropped_token_gets_zero():
    """Every token prefers expert 0; capacity ceil(1.0 * 8 * 1 / 4) = 2 keeps the first two tokens."""
    layer = moe(n_experts=4, top_k=1, capacity_factor=1.0)
    with torch.no_grad():
        layer.router.proj.weight.zero_()
        layer.router.proj.weight[0, 0] = 10.0
    x = torch.randn(1, 8, D, dtype=torch.float64)
    x[..., 0] = x[..., 0].abs() + 1
    y = layer(x)
    assert (y[0, 2:] == 0).all() and (y[0, :2] != 0).all()
    torch.testing.assert_close(y[0, :2], naive_moe(layer, x)[0, :2], atol=1e-12, rtol=1e-12)
    stats = layer.stats()
    assert stats["dropped_fraction"] == pytest.approx(6 / 8) and stats["experts_per_token"] == pytest.approx(2 / 8)
    assert stats["load"] == pytest.approx([1.0, 0.0, 0.0, 0.0])
    layer.eval()                                                       # eval drops nothing
    torch.testing.assert_close(layer(x), naive_moe(layer, x), atol=1e-12, rtol=1e-12)


def test_capacity_keeps_each_experts_first_slots_in_slot_order():
    torch.manual_seed(0)
    for capacity in (0, 1, 3, 50):
        expert = torch.randint(0, 5, (40,))
        assert torch.equal(within_capacity(expert, 5, capacity), within_capacity_reference(expert, 5, capacity))


def test_second_choices_are_dropped_before_any_first_choice():
    """GShard's priority: the slots are ordered all first choices, then all second choices."""
    layer = moe(n_experts=2, top_k=2, capacity_factor=0.5)           # capacity ceil(0.5 * 4 * 2 / 2) = 2
    with torch.no_grad():
        layer.router.proj.weight.zero_()
        layer.router.proj.weight[0, 0] = 5.0                          # tokens 0, 1 prefer expert 0 ...
    x = torch.randn(1, 4, D, dtype=torch.float64)
    x[0, :2, 0], x[0, 2:, 0] = 1.0, -1.0                              # ... tokens 2, 3 prefer expert 1
    y = layer(x)
    routing = top_k_routing(x.reshape(-1, D) @ layer.router.proj.weight.T, 2)
    ex = layer.experts
    for n in range(4):                                                # each token keeps only its first choice
        e, w = routing.experts[n, 0].item(), routing.weights[n, 0]
        torch.testing.assert_close(y[0, n], w * swiglu_row(x[0, n], ex.w1[e], ex.w3[e], ex.w2[e]))
    assert layer.stats()["dropped_fraction"] == pytest.approx(0.5)


def test_eval_output_at_each_token_depends_only_on_that_token():
    layer = moe(capacity_factor=0.5).eval()
    x = torch.randn(2, 6, D, dtype=torch.float64)
    one_by_one = torch.cat([layer(x[:, t:t + 1]) for t in range(6)], dim=1)
    torch.testing.assert_close(layer(x), one_by_one, atol=1e-12, rtol=1e-12)


def test_stats_accumulate_until_reset():
    layer = moe(n_experts=4, top_k=2)
    assert layer.stats() == {}
    layer(torch.randn(2, 5, D, dtype=torch.float64))
    layer(torch.randn(1, 3, D, dtype=torch.float64))
    stats = layer.stats()
    assert stats["experts_per_token"] == 2.0 and stats["dropped_fraction"] == 0.0
    assert sum(stats["load"]) == pytest.approx(1.0) and len(stats["load"]) == 4
    assert 0 < stats["router_entropy"] <= math.log(4)
    layer.reset_stats()
    assert layer.stats() == {}


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_router_computes_in_float32_for_narrower_inputs(dtype):
    torch.manual_seed(0)
    layer = MoE(D, 12).to(dtype)
    y = layer(torch.randn(2, 3, D, dtype=dtype))
    assert y.dtype == dtype and layer.aux["balance"].dtype == torch.float32 and torch.isfinite(y).all()


def test_parameter_counts_and_the_default_expert_width():
    layer = MoE(256)
    assert layer.d_ff == 344                                           # 688 // 2
    assert MoE(256, top_k=1).d_ff == 688 and MoE(20, top_k=3).d_ff == 24    # 56 // 3 = 18, up to 24
    for options in ({}, {"shared_expert": True}, {"n_experts": 3, "top_k": 1}):
        layer = MoE(16, 24, **options)
        assert sum(p.numel() for p in layer.parameters()) == layer.expected_num_params()
    shared = MoE(16, 24, shared_expert=True)
    assert shared.active_params() == 16 * 8 + 3 * 16 * 24 * 3
    assert CHANNEL_MIXERS.get("moe") is MoE


@pytest.mark.parametrize(("options", "field"), [
    ({"top_k": 3, "n_experts": 2}, "top_k"), ({"capacity_factor": -0.5}, "capacity_factor"),
    ({"capacity_factor": 0.0}, "capacity_factor"),
    ({"n_experts": 0}, "n_experts"), ({"top_k": 0}, "top_k"), ({"balance_coef": -1.0}, "balance_coef"),
    ({"z_coef": float("nan")}, "z_coef"), ({"shared_expert": 1}, "shared_expert"), ({"experts": 4}, "experts"),
])
def test_bad_options_name_the_field(options, field):
    with pytest.raises(ConfigError, match=field):
        MoE(16, **options)


def test_every_numeric_option_rejects_values_outside_its_range():
    for field, interval in MoE.Config.RANGES.items():
        if field == "d_model":
            continue
        integer = isinstance(getattr(MoE.Config(d_model=4), field), int)
        for value in values_outside(interval, integer):
            with pytest.raises(ConfigError, match=field):
                MoE(16, **{field: value})


@pytest.mark.parametrize("d_ff", [0, -3, 2.5])
def test_a_bad_expert_width_names_d_ff(d_ff):
    with pytest.raises(ConfigError, match="d_ff"):
        MoE(16, d_ff)
