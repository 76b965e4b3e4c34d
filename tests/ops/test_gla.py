import pytest
import torch

from gatelab.ops import chunk_gla, recurrent_gla
from tests.utils import assert_close, gla_inputs


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


@pytest.mark.parametrize("chunk_size", [7, 12, 40])
def test_chunk_sizes_with_an_odd_base_block_match_the_recurrence_with_gradients(chunk_size):
    """Chunks of 7, 12 = 4 x 3 and 40 = 8 x 5 end the halving at an odd base block (computed in log space), whose
    gradients the written-out backward takes from autograd; the equivalence suite covers powers of two."""
    q, k, v, g, h0 = gla_inputs(2, 45, 2, 6, 5, initial_state=True)
    do = torch.randn(2, 45, 2, 5, dtype=torch.float64)
    grads = []
    for fn in (recurrent_gla, chunk_gla):
        leaves = [t.clone().requires_grad_() for t in (q, k, v, g, h0)]
        o, _ = fn(*leaves[:3], g=leaves[3], initial_state=leaves[4], chunk_size=chunk_size)
        (o * do).sum().backward()
        grads.append([o.detach()] + [t.grad for t in leaves])
    for name, ref, out in zip(("o", "dq", "dk", "dv", "dg", "dh0"), *grads, strict=True):
        torch.testing.assert_close(out, ref, atol=1e-10, rtol=1e-10, msg=f"{name} differs")


def test_the_intra_chunk_levels_are_saved_through_autograd():
    """The halving levels the written-out backward reuses are saved tensors of the graph (freed with it, seen by
    saved-tensor hooks such as activation offloading), not attributes that outlive the backward."""
    q, k, v, g, _ = gla_inputs(1, 64, 1, 8, 8, dtype=torch.float32)
    q.requires_grad_()
    packed = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: packed.append(t.shape) or t, lambda t: t):
        o, _ = chunk_gla(q, k, v, g=g, chunk_size=64)
    o.sum().backward()
    levels = 6                                        # a chunk of 64 halves down to single tokens: 32, 16, ..., 1
    assert sum(1 for shape in packed if len(shape) == 6) >= 5 * levels   # (B, H, N, P, b, .) tensors per level
