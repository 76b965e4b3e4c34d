import pytest
import torch

from gatelab.ops import chunk_gla, recurrent_gla
from tests.utils import assert_close, gla_inputs

CASES = [
    pytest.param(T, C, K, V, s, h0, id=f"T{T}-C{C}-K{K}-V{V}-g{s}-{'h0' if h0 else 'noh0'}")
    for T in (1, 63, 100)
    for C in (1, 16, 64)
    for K, V in ((16, 16), (12, 20))
    for s in (0.1, 1.0, 10.0)
    for h0 in (False, True)
]


def _run(op, q, k, v, g, h0, C):
    leaves = [t.clone().requires_grad_() for t in (q, k, v, g)]
    h0 = h0.clone().requires_grad_() if h0 is not None else None
    o, ht = op(*leaves[:3], g=leaves[3], initial_state=h0, output_final_state=True, chunk_size=C)
    gen = torch.Generator().manual_seed(1)
    do, dht = torch.randn(o.shape, generator=gen, dtype=o.dtype), torch.randn(ht.shape, generator=gen, dtype=ht.dtype)
    ((o * do).sum() + (ht * dht).sum()).backward()
    grads = [t.grad for t in leaves] + ([h0.grad] if h0 is not None else [])
    return o, ht, grads


@pytest.mark.parametrize("T,C,K,V,strength,use_h0", CASES)
def test_chunk_matches_recurrence_float64(T, C, K, V, strength, use_h0):
    q, k, v, g, h0 = gla_inputs(2, T, 3, K, V, strength, initial_state=use_h0)
    o_ref, h_ref, g_ref = _run(recurrent_gla, q, k, v, g, h0, C)
    o, h, grads = _run(chunk_gla, q, k, v, g, h0, C)
    torch.testing.assert_close(o, o_ref, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(h, h_ref, atol=1e-10, rtol=1e-10)
    for name, a, b in zip(("dq", "dk", "dv", "dg", "dh0"), grads, g_ref):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10, msg=lambda m: f"{name}: {m}")


def test_reference_gradcheck():
    q, k, v, g, h0 = gla_inputs(1, 5, 2, 3, 2, initial_state=True)
    inputs = tuple(t.requires_grad_() for t in (q, k, v, g, h0))

    def f(q, k, v, g, h0):
        return recurrent_gla(q, k, v, g=g, initial_state=h0, output_final_state=True)

    assert torch.autograd.gradcheck(f, inputs)


def test_chunk_gradcheck_odd_chunk():
    q, k, v, g, h0 = gla_inputs(1, 7, 1, 3, 2, initial_state=True)
    inputs = tuple(t.requires_grad_() for t in (q, k, v, g, h0))

    def f(q, k, v, g, h0):
        return chunk_gla(q, k, v, g=g, initial_state=h0, output_final_state=True, chunk_size=6)

    assert torch.autograd.gradcheck(f, inputs)


def _naive_parallel_gla(q, k, v, g):
    """The factorised form ``((q e^G)(k e^-G)^T * M) v`` over the whole sequence, unsafe under strong decay."""
    G = g.cumsum(1)
    scale = q.shape[-1] ** -0.5
    A = torch.einsum("bihd,bjhd->bhij", q * scale * G.exp(), k * (-G).exp())
    A = A.masked_fill(~torch.ones(q.shape[1], q.shape[1], dtype=torch.bool).tril(), 0)
    return torch.einsum("bhij,bjhd->bihd", A, v)


def test_strong_decay_float32_is_stable_where_factorised_form_overflows():
    q, k, v, g, _ = gla_inputs(1, 256, 2, 16, 16, strength=0.1, dtype=torch.float32)
    with torch.no_grad():
        naive = _naive_parallel_gla(q, k, v, g)
        o_ref, h_ref = recurrent_gla(q.double(), k.double(), v.double(), g=g.double(), output_final_state=True)
        o, h = chunk_gla(q, k, v, g=g, output_final_state=True)
    assert not torch.isfinite(naive).all()
    assert_close("o", o_ref, o, 1e-5)
    assert_close("h", h_ref, h, 1e-5)


@pytest.mark.parametrize("strength", [0.1, 1.0, 10.0])
def test_long_sequence_float32_forward_and_backward(strength):
    q, k, v, g, h0 = gla_inputs(1, 2048, 2, 16, 16, strength=strength, dtype=torch.float32, initial_state=True)
    with torch.no_grad():
        o_ref, h_ref = recurrent_gla(q.double(), k.double(), v.double(), g=g.double(), initial_state=h0.double(),
                                     output_final_state=True)
    leaves = [t.clone().requires_grad_() for t in (q, k, v, g)]
    o, h = chunk_gla(*leaves[:3], g=leaves[3], initial_state=h0, output_final_state=True)
    (o.sum() + h.sum()).backward()
    assert_close("o", o_ref, o, 1e-5)
    assert_close("h", h_ref, h, 1e-5)
    assert all(torch.isfinite(t.grad).all() for t in leaves)


def test_output_dtype_and_state_dtype():
    q, k, v, g, _ = gla_inputs(1, 10, 1, 4, 4, dtype=torch.float32)
    o, h = chunk_gla(q.bfloat16(), k.bfloat16(), v.bfloat16(), g=g, output_final_state=True)
    assert o.dtype == torch.bfloat16 and h.dtype == torch.float32


def test_bad_shapes_are_explained():
    q, k, v, g, _ = gla_inputs(1, 10, 2, 4, 4)
    with pytest.raises(ValueError, match="g must be"):
        chunk_gla(q, k, v, g=g[..., :2])
    with pytest.raises(ValueError, match="initial_state"):
        recurrent_gla(q, k, v, g=g, initial_state=torch.zeros(1, 2, 4, 5, dtype=q.dtype))
    with pytest.raises(ValueError, match="chunk_size"):
        chunk_gla(q, k, v, g=g, chunk_size=0)
