"""Mamba-1's selective scan: chunked form == reference recurrence in float64 (values and every gradient)."""
import pytest
import torch
import torch.nn.functional as F

from gatelab.ops import chunk_selective_scan, recurrent_selective_scan
from tests.utils import assert_close


def inputs(Bt, T, E, N, strength, use_h0, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(Bt, T, E, generator=gen, dtype=dtype)
    dt = F.softplus(torch.randn(Bt, T, E, generator=gen, dtype=dtype)) / strength
    A = -torch.rand(E, N, generator=gen, dtype=dtype) * 4 - 0.1
    B = torch.randn(Bt, T, N, generator=gen, dtype=dtype)
    C = torch.randn(Bt, T, N, generator=gen, dtype=dtype)
    D = torch.randn(E, generator=gen, dtype=dtype)
    h0 = torch.randn(Bt, E, N, generator=gen, dtype=dtype) if use_h0 else None
    return [x, dt, A, B, C], D, h0


def run(fn, args, D, h0, chunk_size):
    leaves = [t.clone().requires_grad_() for t in args]
    D = D.clone().requires_grad_()
    h0 = h0.clone().requires_grad_() if h0 is not None else None
    y, h = fn(*leaves, D=D, initial_state=h0, output_final_state=True, chunk_size=chunk_size)
    gen = torch.Generator().manual_seed(1)
    ((y * torch.randn(y.shape, generator=gen, dtype=y.dtype)).sum()
     + (h * torch.randn(h.shape, generator=gen, dtype=h.dtype)).sum()).backward()
    return y, h, [t.grad for t in leaves] + [D.grad] + ([h0.grad] if h0 is not None else [])


@pytest.mark.parametrize("T", [1, 63, 100])
@pytest.mark.parametrize("chunk_size", [1, 16, 64])
@pytest.mark.parametrize("strength", [0.1, 1.0, 10.0])
@pytest.mark.parametrize("use_h0", [False, True])
def test_chunk_equals_recurrence_float64(T, chunk_size, strength, use_h0):
    args, D, h0 = inputs(2, T, 5, 3, strength, use_h0)
    y_ref, h_ref, g_ref = run(recurrent_selective_scan, args, D, h0, chunk_size)
    y, h, grads = run(chunk_selective_scan, args, D, h0, chunk_size)
    torch.testing.assert_close(y, y_ref, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(h, h_ref, atol=1e-10, rtol=1e-10)
    for name, a, b in zip(("dx", "ddt", "dA", "dB", "dC", "dD", "dh0"), grads, g_ref, strict=False):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10, msg=f"{name} differs")


def test_reference_gradcheck():
    args, D, h0 = inputs(1, 4, 2, 3, 1.0, True)
    leaves = tuple(t.requires_grad_() for t in (*args, D, h0))

    def f(x, dt, A, B, C, D, h0):
        return recurrent_selective_scan(x, dt, A, B, C, D=D, initial_state=h0, output_final_state=True)

    assert torch.autograd.gradcheck(f, leaves)


def test_long_sequence_float32_strong_decay():
    args, D, h0 = inputs(1, 2048, 8, 4, 0.1, True, dtype=torch.float32)
    with torch.no_grad():
        y_ref, h_ref = recurrent_selective_scan(*(t.double() for t in args), D=D.double(), initial_state=h0.double(),
                                                output_final_state=True)
        y, h = chunk_selective_scan(*args, D=D, initial_state=h0, output_final_state=True)
    assert_close("y", y_ref, y, 1e-5)
    assert_close("h", h_ref, h, 1e-5)


def test_bad_shapes_are_explained():
    args, D, _ = inputs(1, 5, 2, 3, 1.0, False)
    with pytest.raises(ValueError, match="A must be"):
        chunk_selective_scan(args[0], args[1], args[2][:1], args[3], args[4])


def test_long_sequence_float32_gradients_strong_decay():
    args, D, h0 = inputs(1, 2048, 8, 4, 0.1, True, dtype=torch.float32)
    gen = torch.Generator().manual_seed(1)
    dy, dh = torch.randn(1, 2048, 8, generator=gen), torch.randn(1, 8, 4, generator=gen)

    def grads(dtype):
        leaves = [t.to(dtype).requires_grad_() for t in (*args, D, h0)]
        y, h = chunk_selective_scan(*leaves[:5], D=leaves[5], initial_state=leaves[6], output_final_state=True)
        ((y * dy.to(dtype)).sum() + (h * dh.to(dtype)).sum()).backward()
        return [t.grad for t in leaves]

    for name, exact, fast in zip(("dx", "ddt", "dA", "dB", "dC", "dD", "dh0"), grads(torch.float64),
                                 grads(torch.float32), strict=True):
        assert_close(name, exact, fast, 1e-5)
