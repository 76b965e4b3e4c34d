"""The harness every registered channel mixer passes: shapes, position-wise in eval mode, finite gradients,
float64, the documented parameter count, auxiliary losses and statistics."""
import math

import pytest
import torch

import gatelab.layers  # noqa: F401  (registers the channel mixers)
from gatelab.registry import CHANNEL_MIXERS

D_MODEL, B, T = 16, 2, 5

# (key, d_ff, options): variants beyond each key's defaults.
VARIANTS = [
    ("mlp", 24, {}),
    ("swiglu", 8, {}),
    ("polycom", None, dict(activation="polyrelu")),
    ("polycom", 20, dict(order=1)),
    ("polycom", None, dict(order=5, activation="polyrelu")),
    ("grkan", None, dict(num_groups=4, act_init="swish")),
    ("grkan", 32, dict(num_groups=2, shared_numerator=False, weight_init="trunc_normal")),
    ("grkan", None, dict(act_init="gelu_as_released")),
    ("lowrank", None, dict(rank=2, activation="gelu")),
    ("lowrank", 48, dict(bias=False)),
    ("pattention", 24, dict(grown=3, theta="gelu_l2_norm")),
    ("pattention", None, dict(theta="softmax")),
]

CASES = [pytest.param(key, None, {}, id=key) for key in CHANNEL_MIXERS.names()] + [
    pytest.param(key, d_ff, opts, id=f"{key}-{d_ff}-" + "-".join(f"{k}={v}" for k, v in opts.items()))
    for key, d_ff, opts in VARIANTS
]


def build(key, d_ff, opts, dtype=torch.float64):
    torch.manual_seed(0)
    return CHANNEL_MIXERS.get(key)(D_MODEL, d_ff, **opts).to(dtype)


def call(layer, x):
    return layer(x, {}) if layer.uses_carry else layer(x)


def assert_finite_scalars(values: dict):
    for name, value in values.items():
        items = value if isinstance(value, list) else [value]
        for item in items:
            item = float(item)
            assert math.isfinite(item), (name, value)


@pytest.mark.parametrize("key,d_ff,opts", CASES)
def test_shape_float64_and_documented_attributes(key, d_ff, opts):
    layer = build(key, d_ff, opts).eval()
    y = call(layer, torch.randn(B, T, D_MODEL, dtype=torch.float64))
    assert y.shape == (B, T, D_MODEL) and y.dtype == torch.float64 and torch.isfinite(y).all()
    assert type(layer).description and type(layer).paper and type(layer).__doc__
    total = sum(p.numel() for p in layer.parameters())
    assert layer.expected_num_params() == total
    assert 0 < layer.active_params() <= total


@pytest.mark.parametrize("key,d_ff,opts", CASES)
def test_float32_forward(key, d_ff, opts):
    layer = build(key, d_ff, opts, torch.float32)
    y = call(layer, torch.randn(B, T, D_MODEL))
    assert y.dtype == torch.float32 and torch.isfinite(y).all()


@pytest.mark.parametrize("key,d_ff,opts", CASES)
def test_position_wise_in_eval_mode(key, d_ff, opts):
    """The Jacobian of y[b, t] with respect to x[b', s] is zero unless (b', s) == (b, t)."""
    layer = build(key, d_ff, opts).eval()
    x = torch.randn(B, T, D_MODEL, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda inp: call(layer, inp), x)     # (B, T, d, B, T, d)
    blocks = jac.abs().sum((2, 5)).reshape(B * T, B * T)                        # |dy_i / dx_j| per token pair
    off_diagonal = blocks - torch.diag(torch.diagonal(blocks))
    assert off_diagonal.max() == 0
    assert torch.diagonal(blocks).max() > 0     # (a token may get 0: an adaptive layer that ran no learner for it)


@pytest.mark.parametrize("key,d_ff,opts", CASES)
def test_training_gradients_aux_and_stats(key, d_ff, opts):
    layer = build(key, d_ff, opts).train()
    layer.reset_stats()
    layer.on_train_step(0, 10)
    x = torch.randn(B, T, D_MODEL, dtype=torch.float64, requires_grad=True)
    y = call(layer, x)
    assert isinstance(layer.aux, dict)
    for name, loss in layer.aux.items():
        assert loss.dim() == 0 and torch.isfinite(loss), name
    (y.square().sum() + sum(layer.aux.values())).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    grads = {name: p.grad for name, p in layer.named_parameters() if p.grad is not None}
    assert grads, "no parameter received a gradient"
    for name, grad in grads.items():
        assert torch.isfinite(grad).all(), name
    assert_finite_scalars(layer.stats())
    layer.eval()
    with torch.no_grad():
        call(layer, x)
    assert layer.aux == {}
    assert_finite_scalars(layer.stats())
