"""Combiner's factorised attention: the fast forms against the explicit matrix (values and gradients), the matrix's
properties (rows sum to 1, full support, each variant's regions), and float32 stability at T = 4096."""
import pytest
import torch

from gatelab.ops import combiner_attention, combiner_reference
from gatelab.ops.combiner import VARIANTS, combiner_structure
from gatelab.ops.softmax_attn import softmax_attention


def qkv(B=2, T=13, H=2, D=4, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(B, T, H, D, dtype=dtype, generator=g, requires_grad=True) for _ in range(3)]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("T,block_size", [(1, 4), (13, 3), (16, 4), (9, 1), (7, 16), (33, 5)])
def test_fast_form_equals_explicit_matrix_with_gradients(variant, T, block_size):
    q, k, v = qkv(T=T)
    o = combiner_attention(q, k, v, variant=variant, block_size=block_size)
    r, _ = combiner_reference(q, k, v, variant=variant, block_size=block_size)
    torch.testing.assert_close(o, r, atol=1e-10, rtol=1e-10)
    w = torch.randn_like(o)
    grads = torch.autograd.grad((o * w).sum(), (q, k, v))
    expected = torch.autograd.grad((r * w).sum(), (q, k, v))
    for g, e in zip(grads, expected, strict=True):
        torch.testing.assert_close(g, e, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("variant", VARIANTS)
def test_reference_passes_gradcheck(variant):
    q, k, v = qkv(B=1, T=6, H=1, D=2)
    assert torch.autograd.gradcheck(lambda *a: combiner_reference(*a, variant=variant, block_size=2)[0], (q, k, v))


@pytest.mark.parametrize("variant", VARIANTS)
def test_matrix_is_causal_with_full_support_and_rows_summing_to_one(variant):
    q, k, v = qkv(T=19)
    _, A = combiner_reference(q, k, v, variant=variant, block_size=4)
    below = torch.ones(19, 19, dtype=torch.bool).tril()
    assert (A[..., below] > 0).all(), "some earlier position is unreachable"
    assert (A[..., ~below] == 0).all(), "a later position is reachable"
    torch.testing.assert_close(A.sum(-1), torch.ones(2, 2, 19, dtype=torch.float64), atol=1e-12, rtol=0)


@pytest.mark.parametrize("variant", VARIANTS)
def test_structure_partitions_the_past(variant):
    for i in range(40):
        direct, summaries = combiner_structure(i, variant, 6)
        covered = sorted(direct + [j for s in summaries for j in s.region])
        assert covered == list(range(i + 1))


def test_each_variants_sparsity_pattern():
    i, L = 22, 5                                        # block/row 4, column 2; 22 = 0b10110
    direct, summaries = combiner_structure(i, "fixed", L)
    assert direct == [20, 21, 22] and [s.region[0] for s in summaries] == [0, 5, 10, 15]
    assert all(s.anchor is None for s in summaries)
    direct, summaries = combiner_structure(i, "axial", L)
    assert direct == [20, 21, 22] and [s.anchor for s in summaries] == [2, 7, 12, 17]
    direct, summaries = combiner_structure(i, "logsparse", L)
    assert direct == [22] and [s.region for s in summaries] == [(20, 21), (16, 17, 18, 19), tuple(range(16))]
    for n in range(1, 70):                               # at most log2 T summaries per query
        assert len(combiner_structure(n, "logsparse", 1)[1]) == bin(n).count("1")


def test_summarised_tokens_share_one_local_expectation_across_queries():
    """Inside a region the matrix is p(R | i) q(j | R): q(j | R) is the same for every query that summarises R
    (fixed, logsparse: a max-pooled summary query), and for axial the same for queries in one column."""
    q, k, v = qkv(B=1, T=16, H=1)
    for variant, queries, region in [("fixed", (8, 11, 15), slice(0, 4)), ("logsparse", (8, 9, 12), slice(0, 8)),
                                     ("axial", (9, 13), slice(0, 4))]:
        _, A = combiner_reference(q, k, v, variant=variant, block_size=4)
        rows = A[0, 0, list(queries), region]
        shapes = rows / rows.sum(-1, keepdim=True)
        torch.testing.assert_close(shapes, shapes[:1].expand_as(shapes), atol=1e-12, rtol=0)
    _, A = combiner_reference(q, k, v, variant="axial", block_size=4)
    col1, col2 = A[0, 0, 9, :4], A[0, 0, 10, :4]                  # row 0 summarised at columns 1 and 2
    assert not torch.allclose(col1 / col1.sum(), col2 / col2.sum())
    expected = torch.einsum("d,jd->j", q[0, 1, 0], k[0, :4, 0]).mul(0.5).softmax(-1)   # q_(0,1) over row 0
    torch.testing.assert_close(col1 / col1.sum(), expected, atol=1e-12, rtol=0)


@pytest.mark.parametrize("variant,block_size", [("fixed", 1), ("fixed", 32), ("axial", 1), ("axial", 32)])
def test_single_token_regions_or_one_block_are_causal_softmax_attention(variant, block_size):
    q, k, v = qkv(T=17)
    full, _ = softmax_attention(q, k, v, causal=True)
    torch.testing.assert_close(combiner_attention(q, k, v, variant=variant, block_size=block_size), full,
                               atol=1e-10, rtol=1e-10)


def test_logsparse_is_softmax_attention_for_two_tokens_and_not_beyond():
    q, k, v = qkv(T=4)
    full, _ = softmax_attention(q, k, v, causal=True)
    o = combiner_attention(q, k, v, variant="logsparse")
    torch.testing.assert_close(o[:, :2], full[:, :2], atol=1e-12, rtol=0)
    assert (o[:, 3] - full[:, 3]).abs().max() > 1e-3     # position 3 sees [0, 1] through one summary


@pytest.mark.parametrize("variant", VARIANTS)
def test_float32_long_sequence_is_finite_and_close_to_float64(variant):
    q, k, v = (3 * t.detach() for t in qkv(B=1, T=4096, H=1, D=8, dtype=torch.float64))
    o64 = combiner_attention(q, k, v, variant=variant, block_size=64)
    o32 = combiner_attention(q.float(), k.float(), v.float(), variant=variant, block_size=64)
    assert torch.isfinite(o32).all()
    rel = (o32.double() - o64).square().mean().sqrt() / o64.square().mean().sqrt()
    assert rel < 1e-5


def test_bad_options_name_the_option():
    q, k, v = qkv(T=4)
    with pytest.raises(ValueError, match="variant 'mixture'"):
        combiner_attention(q, k, v, variant="mixture")
    with pytest.raises(ValueError, match="block_size"):
        combiner_attention(q, k, v, block_size=0)
