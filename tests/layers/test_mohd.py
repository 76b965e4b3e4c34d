"""Mixture of Hidden Dimensions (``mohd``): the dense limit, a per-token gathered reference, the routed groups as the
only ones read and written, the router's gradients, the balance loss and the statistics."""
import pytest
import torch
import torch.nn.functional as F

from gatelab.config import ConfigError
from gatelab.layers.channel import SwiGLU
from gatelab.layers.channel.moe.mohd import MixtureOfHiddenDimensions

D, D_FF = 16, 20


def make(**options) -> MixtureOfHiddenDimensions:
    torch.manual_seed(0)
    return MixtureOfHiddenDimensions(D, D_FF, **options).double()


def dense_twin(layer: MixtureOfHiddenDimensions) -> SwiGLU:
    dense = SwiGLU(D, D_FF).double()
    dense.load_state_dict({k: v for k, v in layer.state_dict().items() if k[:2] in ("w1", "w2", "w3")})
    return dense


def randomise_fusion(layer: MixtureOfHiddenDimensions) -> None:
    with torch.no_grad():
        layer.fusion.add_(0.3 * torch.randn_like(layer.fusion))


def gathered_reference(layer: MixtureOfHiddenDimensions, x, active, weights):
    """Token by token: gather the active groups' dimensions, run the FFN on the sub-matrices, scatter back, fuse."""
    cfg, s = layer.config, layer.size
    rows = []
    tokens = x.reshape(-1, D), active.reshape(-1, cfg.n_groups), weights.reshape(-1, cfg.n_groups)
    for xt, at, wt in zip(*tokens, strict=True):
        groups = at.nonzero().flatten()
        dims = (groups[:, None] * s + torch.arange(s)).flatten()                          # active dims
        u = xt[dims] * (cfg.n_groups / len(groups))
        h = F.silu(u @ layer.w1.weight[:, dims].T) * (u @ layer.w3.weight[:, dims].T)    # [d_ff]
        o = (h @ layer.w2.weight[dims].T).view(-1, s) * wt[groups, None]                 # [|A|, s]
        y = torch.zeros(cfg.n_groups, s, dtype=x.dtype).index_copy(0, groups, o)
        if layer.fusion is not None:
            y = torch.stack([layer.fusion[i] @ y[:, i] for i in range(s)], dim=1)        # [G, s]
        rows.append(y.flatten())
    return torch.stack(rows).view_as(x)


@pytest.mark.parametrize("fusion", [True, False])
def test_all_groups_active_with_a_uniform_router_equals_the_dense_swiglu(fusion):
    layer = make(n_groups=4, n_shared=1, top_k=3, fusion=fusion)
    with torch.no_grad():
        layer.router.weight.zero_()
    x = torch.randn(2, 7, D, dtype=torch.float64)
    torch.testing.assert_close(layer(x), dense_twin(layer)(x), rtol=1e-10, atol=1e-10)


def test_all_groups_active_scales_each_output_group_by_its_gate_weight():
    layer = make(n_groups=4, n_shared=1, top_k=3, fusion=False)
    x = torch.randn(2, 7, D, dtype=torch.float64)
    probs = torch.softmax(layer.router(x), dim=-1)                                       # [B, T, 3]
    weights = torch.cat([torch.ones_like(probs[..., :1]), 3 * probs], dim=-1)            # [B, T, 4]
    expected = (dense_twin(layer)(x).unflatten(-1, (4, 4)) * weights.unsqueeze(-1)).flatten(-2)
    torch.testing.assert_close(layer(x), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("options", [{}, {"n_groups": 4, "n_shared": 0, "top_k": 2}, {"n_groups": 2, "n_shared": 1}])
def test_masked_form_equals_the_gathered_reference_with_gradients(options):
    layer = make(**options)
    randomise_fusion(layer)
    x = torch.randn(2, 5, D, dtype=torch.float64, requires_grad=True)
    active, weights, _ = layer.route(x)
    fast, ref = layer.mix(x, active, weights), gathered_reference(layer, x, active, weights)
    torch.testing.assert_close(fast, ref, rtol=1e-10, atol=1e-10)
    inputs = [x, *layer.parameters()]
    g = torch.randn_like(fast)
    for a, b in zip(torch.autograd.grad(fast, inputs, g, allow_unused=True, retain_graph=True),
                    torch.autograd.grad(ref, inputs, g, allow_unused=True), strict=True):
        if a is None or b is None:
            assert a is None and b is None
        else:
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_the_routed_output_reads_and_writes_only_the_chosen_groups():
    layer = make(fusion=False)
    x = torch.randn(3, 6, D, dtype=torch.float64)
    active, weights, _ = layer.route(x)
    assert (active.sum(-1) == 4).all() and active[..., :3].all()                          # 3 shared + top 1 of 5
    dims = active.repeat_interleave(layer.size, dim=-1)                                   # [B, T, d_model]
    y = layer.mix(x, active, weights.detach())
    assert torch.equal(y[~dims], torch.zeros_like(y[~dims]))                              # inactive outputs are 0
    other = torch.where(dims, x, torch.randn_like(x)).requires_grad_()                    # inactive inputs changed
    y2 = layer.mix(other, active, weights.detach())
    torch.testing.assert_close(y2, y, rtol=1e-12, atol=1e-12)
    (grad,) = torch.autograd.grad(y2.sum(), other)
    assert torch.equal(grad[~dims], torch.zeros_like(grad[~dims])) and grad[dims].abs().sum() > 0


def test_the_fusion_spreads_the_active_groups_into_the_inactive_ones():
    layer = make()
    assert torch.equal(layer.fusion, torch.eye(8).expand(layer.size, -1, -1))           # identity at init
    randomise_fusion(layer)
    x = torch.randn(2, 4, D, dtype=torch.float64)
    active, _, _ = layer.route(x)
    inactive_out = layer(x)[~active.repeat_interleave(layer.size, dim=-1)]
    assert inactive_out.abs().min() > 0


def test_the_task_loss_and_the_balance_loss_train_the_router():
    layer = make().train()
    layer(torch.randn(2, 9, D, dtype=torch.float64)).square().sum().backward(retain_graph=True)
    assert layer.router.weight.grad.abs().sum() > 0
    layer.zero_grad()
    layer.aux["balance"].backward()
    assert layer.router.weight.grad.abs().sum() > 0 and layer.w1.weight.grad is None


def test_balance_loss_is_its_minimum_under_a_uniform_router():
    layer = make(balance_coef=0.5).train()
    with torch.no_grad():
        layer.router.weight.zero_()
    layer(torch.randn(2, 9, D, dtype=torch.float64))
    assert layer.aux["balance"].detach().item() == pytest.approx(0.5)                      # coef * R * sum f / R
    layer.eval()
    layer(torch.randn(2, 9, D, dtype=torch.float64))
    assert layer.aux == {}


def test_stats():
    layer = make(n_groups=8, n_shared=2, top_k=2)
    assert layer.stats() == {}
    layer(torch.randn(2, 5, D, dtype=torch.float64))
    layer(torch.randn(1, 5, D, dtype=torch.float64))
    stats = layer.stats()
    assert stats["active_fraction"] == pytest.approx(4 / 8)
    assert len(stats["load"]) == 6 and sum(stats["load"]) == pytest.approx(1.0)
    layer.reset_stats()
    assert layer.stats() == {}


@pytest.mark.parametrize("options", [{}, {"fusion": False}, {"n_groups": 4, "n_shared": 0, "top_k": 2}])
def test_parameter_count_and_active_params(options):
    layer = MixtureOfHiddenDimensions(16, 32, **options)
    assert sum(p.numel() for p in layer.parameters()) == layer.expected_num_params()
    cfg, s = layer.config, layer.size
    n_active = cfg.n_shared + cfg.top_k
    fusion = s * cfg.n_groups * n_active if cfg.fusion else 0
    assert layer.active_params() == 3 * 32 * n_active * s + 16 * (cfg.n_groups - cfg.n_shared) + fusion
    assert MixtureOfHiddenDimensions(16).config.d_ff == 48


def test_float32_router_under_bfloat16():
    layer = MixtureOfHiddenDimensions(16).to(torch.bfloat16)
    x = torch.randn(2, 5, 16, dtype=torch.bfloat16)
    _, weights, probs = layer.route(x)
    assert probs.dtype == torch.float32
    y = layer(x)
    assert y.dtype == torch.bfloat16 and torch.isfinite(y).all()


@pytest.mark.parametrize("options, match", [
    ({"n_groups": 5}, "n_groups=5 must divide d_model=16"),
    ({"n_groups": 4, "n_shared": 2, "top_k": 3}, "top_k=3 is more than the 2 routed groups"),
    ({"top_k": 0}, "top_k=0 is out of range"),
    ({"n_shared": -1}, "n_shared=-1 is out of range"),
    ({"balance_coef": -0.1}, "balance_coef=-0.1 is out of range"),
    ({"n_experts": 4}, "unknown config key 'MixtureOfHiddenDimensions.n_experts'"),
])
def test_bad_options(options, match):
    with pytest.raises(ConfigError, match=match):
        MixtureOfHiddenDimensions(D, D_FF, **options)
