"""Adaptive Computation Modules (``acm``): learners against the full FFN, the grouped inference path against the
masked training path, the straight-through gate, the budget loss and the statistics."""
import pytest
import torch
import torch.nn.functional as F

from gatelab.config import ConfigError
from gatelab.layers.channel.moe.acm import AdaptiveComputationModule

D, N = 8, 4


def make(**options) -> AdaptiveComputationModule:
    torch.manual_seed(0)
    return AdaptiveComputationModule(D, 24, n_learners=N, **options).double()


def force_choice(layer: AdaptiveComputationModule, k: int) -> None:
    """Make the gate pick choice ``k`` for every token (a large bias on its logit)."""
    with torch.no_grad():
        layer.gate[-1].bias.zero_()
        layer.gate[-1].bias[k] = 1e6


def full_ffn(layer: AdaptiveComputationModule, x: torch.Tensor) -> torch.Tensor:
    """The dense FFN whose W1 / W2 are the learners' blocks side by side."""
    w = layer.width
    w1 = torch.cat([layer.w1[:, j * w:(j + 1) * w] for j in range(N)], dim=1)
    b1 = torch.cat([layer.b1[j * w:(j + 1) * w] for j in range(N)])
    w2 = torch.cat([layer.w2[j * w:(j + 1) * w] for j in range(N)], dim=0)
    return F.gelu(x @ w1 + b1) @ w2


def prefix_sum(layer: AdaptiveComputationModule, x: torch.Tensor, k: int) -> torch.Tensor:
    """Learners 1..k run one by one and summed: the paper's definition of choice k."""
    w, out = layer.width, torch.zeros_like(x)
    for j in range(k):
        cols = slice(j * w, (j + 1) * w)
        out = out + F.gelu(x @ layer.w1[:, cols] + layer.b1[cols]) @ layer.w2[cols]
    return out


@pytest.mark.parametrize("training", [False, True])
def test_all_learners_equal_the_full_ffn(training):
    layer = make()
    force_choice(layer, N)
    layer.train(training)
    x = torch.randn(2, 7, D, dtype=torch.float64)
    torch.testing.assert_close(layer(x), full_ffn(layer, x), rtol=1e-10, atol=1e-10)
    assert layer.stats()["learners_per_token"] == N


@pytest.mark.parametrize("training", [False, True])
def test_choice_zero_outputs_zero(training):
    layer = make()
    force_choice(layer, 0)
    layer.train(training)
    y = layer(torch.randn(2, 7, D, dtype=torch.float64))
    assert torch.equal(y, torch.zeros_like(y))
    gate_flops = 2 * D * (N + 1)
    assert layer.stats()["flops_fraction"] == pytest.approx(gate_flops / (4 * D * 24))


@pytest.mark.parametrize("k", range(N + 1))
def test_choice_k_is_the_prefix_sum_of_k_learners(k):
    layer = make().eval()
    force_choice(layer, k)
    x = torch.randn(3, 5, D, dtype=torch.float64)
    torch.testing.assert_close(layer(x), prefix_sum(layer, x, k), rtol=1e-10, atol=1e-10)


def test_grouped_path_equals_the_masked_path_with_gradients():
    layer = make()
    choice = torch.arange(3 * 11) % (N + 1)
    choice = choice[torch.randperm(len(choice))].view(3, 11)                             # every choice, shuffled
    mask = F.one_hot(choice, N + 1)[..., 1:].flip(-1).cumsum(-1).flip(-1).double()
    x = torch.randn(3, 11, D, dtype=torch.float64, requires_grad=True)
    params = [layer.w1, layer.b1, layer.w2]
    grouped, masked = layer.grouped_forward(x, choice), layer.masked_forward(x, mask)
    torch.testing.assert_close(grouped, masked, rtol=1e-10, atol=1e-10)
    g = torch.randn_like(grouped)
    grads = torch.autograd.grad(grouped, [x, *params], g), torch.autograd.grad(masked, [x, *params], g)
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_eval_forward_is_the_masked_path_at_the_argmax_choice():
    layer = make(gate="mlp")
    with torch.no_grad():
        for lin in layer.gate:
            lin.weight.mul_(8)
    layer.eval()
    x = torch.randn(4, 16, D, dtype=torch.float64)
    choice = layer.gate_logits(x).argmax(-1)
    assert len(choice.unique()) >= 3                                                     # several groups exercised
    mask = F.one_hot(choice, N + 1)[..., 1:].flip(-1).cumsum(-1).flip(-1).double()
    torch.testing.assert_close(layer(x), layer.masked_forward(x, mask), rtol=1e-10, atol=1e-10)
    assert layer.aux == {}


def test_the_task_loss_reaches_the_gate_through_the_straight_through_estimator():
    layer = make(budget_coef=0.0).train()
    x = torch.randn(2, 9, D, dtype=torch.float64)
    layer(x).square().sum().backward()
    for lin in layer.gate:
        assert lin.weight.grad is not None and lin.weight.grad.abs().sum() > 0


def test_budget_loss_is_the_l1_distance_of_the_mean_cost_from_the_target():
    layer = make(budget_target=0.25, budget_coef=0.5).train()
    layer(torch.randn(3, 10, D, dtype=torch.float64))
    cost = layer.stats()["learners_per_token"] / N
    assert layer.aux["budget"].detach().item() == pytest.approx(0.5 * abs(cost - 0.25))
    layer.aux["budget"].backward()
    assert layer.gate[0].weight.grad.abs().sum() > 0
    assert layer.w1.grad is None                                                      # the budget trains the gate only


def test_stats_accumulate_until_reset():
    layer = make().eval()
    assert layer.stats() == {}
    layer(torch.randn(2, 5, D, dtype=torch.float64))
    layer(torch.randn(1, 5, D, dtype=torch.float64))
    stats = layer.stats()
    assert sum(stats["choices"]) == pytest.approx(1.0) and len(stats["choices"]) == N + 1
    lpt = stats["learners_per_token"]
    gate = 2 * D * (N + 1)
    assert stats["flops_fraction"] == pytest.approx((lpt * 4 * D * layer.width + gate) / (4 * D * 24))
    layer.reset_stats()
    assert layer.stats() == {}


@pytest.mark.parametrize("options", [{}, {"gate": "mlp"}, {"gate": "mlp", "gate_hidden": 5}, {"n_learners": 2}])
def test_parameter_count_and_active_params(options):
    layer = AdaptiveComputationModule(12, 48, **options)
    assert sum(p.numel() for p in layer.parameters()) == layer.expected_num_params()
    n, w = layer.config.n_learners, layer.width
    gate = sum(p.numel() for p in layer.gate.parameters())
    assert layer.active_params() == gate + round(0.5 * n * (2 * 12 * w + w))


def test_default_width_and_low_precision():
    layer = AdaptiveComputationModule(16)
    assert layer.config.d_ff == 64 and layer.width == 16
    layer = layer.to(torch.bfloat16)
    x = torch.randn(2, 5, 16, dtype=torch.bfloat16)
    assert layer.gate_logits(x).dtype == torch.float32
    for training in (True, False):
        y = layer.train(training)(x)
        assert y.dtype == torch.bfloat16 and torch.isfinite(y).all()


@pytest.mark.parametrize("options, match", [
    ({"n_learners": 5}, "n_learners=5 must divide d_ff=24"),
    ({"gate_hidden": 8}, "gate_hidden=8 has no effect with gate='linear'"),
    ({"gate": "deep"}, "gate: 'deep' is not allowed"),
    ({"gumbel_tau": 0.0}, "gumbel_tau=0.0 is out of range"),
    ({"budget_target": 1.5}, "budget_target=1.5 is out of range"),
    ({"budget_coef": -1.0}, "budget_coef=-1.0 is out of range"),
    ({"n_learners": 0}, "n_learners=0 is out of range"),
])
def test_bad_options(options, match):
    with pytest.raises(ConfigError, match=match):
        AdaptiveComputationModule(D, 24, **options)
