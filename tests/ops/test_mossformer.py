"""MossFormer's (FLASH's) mixed chunk attention: the chunked form against the per-token reference (outputs, final
state, gradients), its parts, and float32 stability at T = 4096."""
import pytest
import torch

from gatelab.ops import chunk_mossformer_attention, recurrent_mossformer_attention


def inputs(B=2, T=13, H=2, D=5, E=3, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    qk = [torch.randn(B, T, H, D, dtype=dtype, generator=g, requires_grad=True) for _ in range(4)]
    return qk + [torch.randn(B, T, H, E, dtype=dtype, generator=g, requires_grad=True)]


@pytest.mark.parametrize("T,G", [(1, 4), (13, 4), (16, 4), (9, 1), (7, 16), (100, 16)])
@pytest.mark.parametrize("with_state", [False, True])
def test_chunked_equals_reference_with_final_state_and_gradients(T, G, with_state):
    xs = inputs(T=T)
    s0 = torch.randn(2, 2, 5, 3, dtype=torch.float64, requires_grad=True) if with_state else None
    o, f = chunk_mossformer_attention(*xs, chunk_size=G, initial_state=s0, output_final_state=True)
    r, fr = recurrent_mossformer_attention(*xs, chunk_size=G, initial_state=s0, output_final_state=True)
    torch.testing.assert_close(o, r, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(f, fr, atol=1e-10, rtol=1e-10)
    w, wf = torch.randn_like(o), torch.randn_like(f)
    leaves = xs + ([s0] if with_state else [])
    grads = torch.autograd.grad((o * w).sum() + (f * wf).sum(), leaves, allow_unused=True, materialize_grads=True)
    expected = torch.autograd.grad((r * w).sum() + (fr * wf).sum(), leaves, allow_unused=True,
                                   materialize_grads=True)
    for g, e in zip(grads, expected, strict=True):
        torch.testing.assert_close(g, e, atol=1e-10, rtol=1e-10)


def test_reference_passes_gradcheck():
    xs = inputs(B=1, T=5, H=1, D=2, E=2)
    assert torch.autograd.gradcheck(lambda *a: recurrent_mossformer_attention(*a, chunk_size=2)[0], xs)


def test_quadratic_inside_groups_linear_across_them():
    """Zero lin maps: relu^2 attention inside each group only; zero quad maps: each group reads the earlier groups'
    sum of lin_k^T v / G and nothing of its own."""
    qq, kq, ql, kl, v = (t.detach() for t in inputs(B=1, T=8, H=1))
    G = 4
    quad, _ = chunk_mossformer_attention(qq, kq, torch.zeros_like(ql), kl, v, chunk_size=G)
    scores = torch.einsum("bihd,bjhd->bhij", qq, kq) / G
    same_group = (torch.arange(8)[:, None] // G == torch.arange(8) // G) & torch.ones(8, 8).tril().bool()
    expected = torch.einsum("bhij,bjhe->bihe", torch.relu(scores).square() * same_group, v)
    torch.testing.assert_close(quad, expected, atol=1e-12, rtol=0)
    lin, state = chunk_mossformer_attention(torch.zeros_like(qq), kq, ql, kl, v, chunk_size=G,
                                            output_final_state=True)
    assert lin[:, :G].abs().max() == 0
    first = torch.einsum("bjhd,bjhe->bhde", kl[:, :G], v[:, :G]) / G
    torch.testing.assert_close(lin[:, G:], torch.einsum("bihd,bhde->bihe", ql[:, G:], first), atol=1e-12, rtol=0)
    torch.testing.assert_close(state, first + torch.einsum("bjhd,bjhe->bhde", kl[:, G:], v[:, G:]) / G)


def test_a_query_with_only_negative_scores_in_the_first_group_outputs_zero():
    """relu^2 is exactly zero below 0: no softmax floor, so such a query reads nothing (and has no gradient)."""
    qq, kq, ql, kl, v = (t.detach() for t in inputs(B=1, T=1, H=1))
    kq = -qq
    o, _ = chunk_mossformer_attention(qq, kq, ql, kl, v, chunk_size=4)
    assert o.abs().max() == 0


def test_float32_long_sequence_is_finite_and_close_to_float64():
    xs = [t.detach() for t in inputs(B=1, T=4096, H=1, D=16, E=16)]
    o64, _ = chunk_mossformer_attention(*xs, chunk_size=256)
    o32, _ = chunk_mossformer_attention(*(t.float() for t in xs), chunk_size=256)
    assert torch.isfinite(o32).all()
    rel = (o32.double() - o64).square().mean().sqrt() / o64.square().mean().sqrt()
    assert rel < 1e-5


def test_linear_part_reads_earlier_groups_without_cancellation():
    """Group 0's ``lin_k^T v / G`` is 1 and group 1's 1e8: group 1's queries read exactly 1 in float32. An exclusive
    sum by subtraction, ``(1 + 1e8) - 1e8``, gives 0 (1 + 1e8 rounds to 1e8)."""
    G, T = 2, 4
    quad_q = quad_k = torch.zeros(1, T, 1, 1)
    lin_q = torch.ones(1, T, 1, 1)
    lin_k = v = torch.tensor([1.0, 1.0, 1e4, 1e4]).view(1, T, 1, 1)
    o, _ = chunk_mossformer_attention(quad_q, quad_k, lin_q, lin_k, v, chunk_size=G)
    assert o.flatten().tolist() == [0.0, 0.0, 1.0, 1.0]


def test_bad_chunk_size():
    with pytest.raises(ValueError, match="chunk_size"):
        chunk_mossformer_attention(*inputs(T=3), chunk_size=0)
