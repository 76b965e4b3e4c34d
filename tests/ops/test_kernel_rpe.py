"""Kernelized attention with RPE: the exactly causal FFT form equals the explicit quadratic matrix in float64 (with
gradients), its Toeplitz product reads nothing from later tokens, and float32 stays close to float64 at T=4096."""
import pytest
import torch

from gatelab.ops import fft_kernel_rpe, quadratic_kernel_rpe
from gatelab.ops.kernel_rpe import causal_toeplitz
from tests.utils import assert_close


def inputs(B, T, H, M, V, dtype=torch.float64, spread=2.0, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q = torch.exp(torch.randn(B, T, H, M, generator=gen, dtype=dtype))
    k = torch.exp(torch.randn(B, T, H, M, generator=gen, dtype=dtype))
    v = torch.randn(B, T, H, V, generator=gen, dtype=dtype)
    return q, k, v, torch.randn(H, T, generator=gen, dtype=dtype) * spread


@pytest.mark.parametrize("T", [1, 63, 100])
@pytest.mark.parametrize("block_size", [1, 16, 64])
def test_fft_equals_quadratic_with_gradients(T, block_size):
    leaves = inputs(2, T, 2, 5, 3)
    results = []
    for fn in (fft_kernel_rpe, quadratic_kernel_rpe):
        xs = [t.clone().requires_grad_() for t in leaves]
        o = fn(*xs[:3], bias=xs[3], block_size=block_size)
        (o * torch.linspace(-1, 1, o.numel(), dtype=o.dtype).view(o.shape)).sum().backward()
        results.append([o.detach()] + [t.grad for t in xs])
    for name, a, b in zip(("o", "dq", "dk", "dv", "dbias"), *results, strict=True):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10, msg=name)


def test_quadratic_queries_after_a_cache_equal_the_tail_of_the_whole():
    q, k, v, bias = inputs(1, 20, 2, 4, 3)
    whole = quadratic_kernel_rpe(q, k, v, bias=bias)
    tail = quadratic_kernel_rpe(q[:, 13:], k, v, bias=bias)
    torch.testing.assert_close(tail, whole[:, 13:], atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("block_size", [1, 4, 32])
def test_causal_toeplitz_is_the_lower_triangular_product_and_reads_no_later_token(block_size):
    T = 45
    weights = torch.rand(2, T, dtype=torch.float64)
    x = torch.randn(1, 2, 3, T, dtype=torch.float64, requires_grad=True)
    lag = torch.arange(T)[:, None] - torch.arange(T)[None, :]
    dense = weights[:, lag.clamp(min=0)] * (lag >= 0)                                  # (H, T, T)
    y = causal_toeplitz(weights, x, block_size)
    torch.testing.assert_close(y, torch.einsum("hij,bhsj->bhsi", dense, x), atol=1e-12, rtol=1e-12)
    for t in (0, 17, 31, 44):
        (grad,) = torch.autograd.grad(y[..., t].sum(), x, retain_graph=True)
        assert (grad[..., t + 1:] == 0).all() and (grad[..., :t + 1] != 0).any()


def test_gradcheck_quadratic_at_tiny_sizes():
    q, k, v, bias = (t.requires_grad_() for t in inputs(1, 4, 1, 2, 2))
    assert torch.autograd.gradcheck(lambda *a: quadratic_kernel_rpe(*a[:3], bias=a[3]), (q, k, v, bias))


@pytest.mark.parametrize("bias_kind,tolerance", [("random", 1e-4), ("decaying", 1e-4), ("wide", 1e-2)])
def test_float32_long_sequence_is_finite_and_close_to_float64(bias_kind, tolerance):
    """T=4096: weights e^{b} over a range of about e^{+-8} (random), an ALiBi-like decay to e^{-40}, or spread over
    about e^{+-30} (wide); features of Performer's range (positive, varying by e^{+-3}). An FFT's rounding is
    relative to the largest weight of the lags it covers, so a wide spread of biases costs float32 accuracy
    (relative RMS error about 3e-3 in the wide case)."""
    q, k, v, _ = inputs(1, 4096, 2, 8, 8, dtype=torch.float32)
    lags = torch.arange(4096, dtype=torch.float32)
    bias = {"random": torch.randn(2, 4096) * 4, "decaying": -torch.stack([lags, lags / 4]) / 100,
            "wide": torch.randn(2, 4096) * 15}[bias_kind]
    with torch.no_grad():
        o32 = fft_kernel_rpe(q, k, v, bias=bias)
        o64 = fft_kernel_rpe(q.double(), k.double(), v.double(), bias=bias.double())
    assert_close("o", o64, o32, tolerance)


@pytest.mark.parametrize("fn", [fft_kernel_rpe, quadratic_kernel_rpe])
def test_float32_bias_spread_beyond_exp_underflow_stays_finite(fn):
    """Lags 0..4 sit 110 below the largest bias: e^-110 is 0 in float32, so the first five queries, which see only
    those lags, read 0 / 0 unless the weights are floored; equal floored weights give their exact (flat) mean."""
    q, k, v, bias = inputs(1, 40, 2, 4, 3, dtype=torch.float32)
    bias[:, :5], bias[:, 5:] = 0.0, 110.0
    with torch.no_grad():
        o = fn(q, k, v, bias=bias)
        o64 = fn(q.double(), k.double(), v.double(), bias=bias.double())
    assert torch.isfinite(o).all()
    assert_close("o", o64, o, 1e-5)
    flat = quadratic_kernel_rpe(q[:, :5].double(), k[:, :5].double(), v[:, :5].double(),
                                bias=torch.zeros(2, 5, dtype=torch.float64))
    torch.testing.assert_close(o[:, :5].double(), flat, atol=1e-5, rtol=1e-5)


def test_bad_inputs_are_explained():
    q, k, v, bias = inputs(1, 6, 2, 3, 3)
    with pytest.raises(ValueError, match="block_size must be a power of two"):
        fft_kernel_rpe(q, k, v, bias=bias, block_size=48)
    with pytest.raises(ValueError, match=r"bias must be \[H, Tk\]"):
        fft_kernel_rpe(q, k, v, bias=bias[:1])
    with pytest.raises(ValueError, match="queries after a cache use quadratic_kernel_rpe"):
        fft_kernel_rpe(q[:, 2:], k, v, bias=bias)
    with pytest.raises(ValueError, match="Tq <= Tk"):
        quadratic_kernel_rpe(q, k[:, :3], v[:, :3], bias=bias[:, :3])
