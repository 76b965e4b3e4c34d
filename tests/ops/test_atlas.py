"""ATLAS's Omega rule: the chunk-parallel form equals the token loop, the loop is the rule (checked against
autograd on an explicit MLP), the window holds exactly the last c tokens, and Newton-Schulz orthogonalises."""
import pytest
import torch
import torch.nn.functional as F

from gatelab.ops import chunk_atlas, recurrent_atlas
from gatelab.ops.atlas import newton_schulz
from gatelab.ops.atlas.memory import NS_COEFFS, window_gradient
from tests.utils import assert_close


def inputs(B=2, T=13, H=2, Fd=7, D=3, V=4, dtype=torch.float64, seed=0):
    """Feature-mapped q, k ``[B, T, H, F]`` (unit rows, as the layer's bounded features), v, and the gates and
    initial memory as keyword arguments."""
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return torch.randn(*shape, generator=gen, dtype=dtype)
    q, k, v = F.normalize(rand(B, T, H, Fd), dim=-1), F.normalize(rand(B, T, H, Fd), dim=-1), rand(B, T, H, V)
    gates = dict(g=F.logsigmoid(rand(B, T, H) + 3), beta=0.2 * torch.sigmoid(rand(B, T, H) - 1),
                 g_momentum=F.logsigmoid(rand(B, T, H) + 1), gamma=torch.sigmoid(rand(B, T, H)),
                 w1=rand(H, Fd, D) / Fd**0.5, w2=rand(H, D, V) / D**0.5)
    return (q, k, v), gates


def split(kw, sl):
    return {n: (x if n in ("w1", "w2") else x[:, sl]) for n, x in kw.items()}


@pytest.mark.parametrize("T", [1, 13, 40])
@pytest.mark.parametrize("chunk_size", [1, 4, 16])
@pytest.mark.parametrize("window,ns_steps,residual", [(1, 5, True), (3, 5, False), (4, 0, True)])
def test_chunk_form_equals_the_token_loop_with_gradients(T, chunk_size, window, ns_steps, residual):
    (q, k, v), kw = inputs(T=T)
    opts = dict(window=window, ns_steps=ns_steps, residual=residual, chunk_size=chunk_size)
    results = []
    for op in (recurrent_atlas, chunk_atlas):
        leaves = [x.clone().requires_grad_() for x in (q, k, v)]
        gates = {n: x.clone().requires_grad_() for n, x in kw.items()}
        o, st = op(*leaves, **gates, **opts, output_final_state=True)
        (o.square().sum() + st.w1.sum() + st.s2.square().sum()).backward()
        results.append([o.detach(), st.w1.detach(), st.s1.detach(), st.window_k]
                       + [x.grad for x in leaves] + [gates[n].grad for n in kw])
    for i, (ref, out) in enumerate(zip(*results, strict=True)):  # gradients reach 1e3 (NS's normalisation)
        scale = max([1.0, *ref.abs().flatten().tolist()])
        torch.testing.assert_close(out, ref, atol=1e-10 * scale, rtol=1e-10, msg=f"item {i} differs")


@pytest.mark.parametrize("op", [recurrent_atlas, chunk_atlas])
@pytest.mark.parametrize("chunk_size", [1, 3, 8])
def test_a_state_continues_the_sequence_whatever_the_split(op, chunk_size):
    """Chunk boundaries follow the state's offset, so prefix + rest == whole for a split inside a chunk."""
    (q, k, v), kw = inputs(T=17)
    opts = dict(window=3, chunk_size=chunk_size)
    whole, _ = op(q, k, v, **kw, **opts)
    first, st = op(q[:, :5], k[:, :5], v[:, :5], **split(kw, slice(0, 5)), **opts, output_final_state=True)
    rest, _ = op(q[:, 5:], k[:, 5:], v[:, 5:], **split(kw, slice(5, None)), **opts, initial_state=st)
    torch.testing.assert_close(torch.cat([first, rest], 1), whole, atol=1e-10, rtol=1e-10)


def mlp(w1, w2, u):
    return u[..., : w2.shape[-1]] + F.silu(u @ w1) @ w2


def test_window_one_without_momentum_or_orthogonalisation_is_the_online_gradient_step():
    """c = 1, theta = 0, no Newton-Schulz: ``M_t = alpha_t M_{t-1} - eta_t grad gamma_t ||M(k_t) - v_t||^2`` at
    ``M_{t-1}``, the online (delta-rule-like) update, with the gradient taken by autograd on the written-out MLP."""
    (q, k, v), kw = inputs(B=1, T=4, H=1)
    kw["g_momentum"] = torch.full_like(kw["g"], -torch.inf)        # theta = 0: no momentum
    o, st = recurrent_atlas(q, k, v, **kw, window=1, ns_steps=0, output_final_state=True)
    w1, w2 = kw["w1"][0], kw["w2"][0]
    for t in range(4):
        m1, m2 = w1.clone().requires_grad_(), w2.clone().requires_grad_()
        loss = kw["gamma"][0, t, 0] * (mlp(m1, m2, k[0, t, 0]) - v[0, t, 0]).square().sum()
        g1, g2 = torch.autograd.grad(loss, (m1, m2))
        alpha, eta = kw["g"][0, t, 0].exp(), kw["beta"][0, t, 0]
        w1, w2 = alpha * w1 - eta * g1, alpha * w2 - eta * g2
        torch.testing.assert_close(o[0, t, 0], mlp(w1, w2, q[0, t, 0]), atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(st.w1[0, 0], w1, atol=1e-12, rtol=1e-12)


def test_linear_memory_gradient_is_the_delta_rule_error_times_key():
    """With the hidden layer silenced (W2 = 0 for the output, a linear read through the residual only), the
    window loss's gradient w.r.t. W2 is ``sum_i 2 gamma_i silu(k_i W1)^T (k_i[:V] - v_i)``: the delta rule's
    error-times-feature outer product, summed over the window."""
    (q, k, v), kw = inputs(B=1, T=5, H=1)
    w1, u, vv, gamma = kw["w1"][0], k[0, :, 0], v[0, :, 0], kw["gamma"][0, :, 0]
    w2 = torch.zeros_like(kw["w2"][0])
    g1, g2 = window_gradient(w1, w2, u, vv, gamma, residual=True)
    expected = (F.silu(u @ w1).T * 2 * gamma) @ (u[:, : vv.shape[-1]] - vv)
    torch.testing.assert_close(g2, expected, atol=1e-12, rtol=1e-12)
    assert g1.abs().max() == 0                                     # no path to W1 while W2 = 0


@pytest.mark.parametrize("window", [1, 3])
def test_a_token_older_than_the_window_reaches_later_outputs_only_through_the_memory(window):
    """Cut the memory and momentum carried from a prefix: the rest's outputs then depend on exactly the last
    c - 1 prefix tokens (the window the state holds), by gradient."""
    (q, k, v), kw = inputs(B=1, T=12, H=1)
    k = k.clone().requires_grad_()
    _, st = recurrent_atlas(q[:, :8], k[:, :8], v[:, :8], **split(kw, slice(0, 8)), window=window,
                            output_final_state=True)
    cut = st._replace(**{n: getattr(st, n).detach() for n in ("w1", "w2", "s1", "s2")})
    o, _ = recurrent_atlas(q[:, 8:], k[:, 8:], v[:, 8:], **split(kw, slice(8, None)), window=window,
                           initial_state=cut)
    (grad,) = torch.autograd.grad(o.sum(), k)
    reach = grad[0, :8].abs().sum(-1).squeeze(-1) > 0              # (8,) prefix tokens that still matter
    assert reach.tolist() == [i >= 8 - (window - 1) for i in range(8)]


def naive_newton_schulz(x, steps):
    a, b, c = NS_COEFFS
    y = x / x.square().sum((-2, -1), keepdim=True).sqrt()
    for _ in range(steps):
        gram = y @ y.transpose(-1, -2)
        y = a * y + (b * gram + c * gram @ gram) @ y
    return y


@pytest.mark.parametrize("shape", [(3, 5, 9), (3, 9, 5), (2, 6, 6)])
def test_newton_schulz_on_the_gram_side_is_muons_iteration(shape):
    x = torch.randn(*shape, dtype=torch.float64)
    torch.testing.assert_close(newton_schulz(x, 5, eps=0.0), naive_newton_schulz(x, 5), atol=1e-12, rtol=1e-12)


def test_newton_schulz_orthogonalises_keeping_the_singular_vectors():
    """NS_5(X) ~ U V^T: its singular values lie in Muon's band around 1 (its quintic trades exactness for speed),
    and in X's singular bases it is diagonal. Zero steps leave X alone; X = 0 has finite gradients."""
    x = torch.randn(4, 40, 8, dtype=torch.float64) * 10
    o = newton_schulz(x, 5)
    sv = torch.linalg.svdvals(o)
    assert (sv > 0.6).all() and (sv < 1.25).all()
    U, _, Vh = torch.linalg.svd(x, full_matrices=False)
    inner = U.transpose(-1, -2) @ o @ Vh.transpose(-1, -2)          # (4, 8, 8)
    off = inner - torch.diag_embed(torch.diagonal(inner, dim1=-2, dim2=-1))
    assert off.abs().max() < 1e-10
    assert torch.equal(newton_schulz(x, 0), x)
    zero = torch.zeros(5, 3, dtype=torch.float64, requires_grad=True)
    newton_schulz(zero, 5).sum().backward()
    assert torch.isfinite(zero.grad).all()


def test_long_sequence_float32_is_finite_bounded_and_tracks_float64():
    """The inner optimiser is a nonlinear dynamical system that amplifies small differences (a float64 run with
    its values changed by 1e-7 parts drifts away the same way), so float32 follows float64 closely over the first
    256 tokens and, over all 4096, stays finite, bounded (retention alpha < 1 and the orthogonalised steps bound
    the memory) and near it in RMS."""
    (q, k, v), kw = inputs(B=1, T=4096, H=1, Fd=10, D=4, V=4, dtype=torch.float32)
    noise = torch.randn(2, 1, 4096, 1, generator=torch.Generator().manual_seed(0))
    kw.update(g=F.logsigmoid(noise[0] + 4.6), beta=torch.sigmoid(noise[1] - 4.6))  # the layer's initial gates
    with torch.no_grad():
        o32, _ = chunk_atlas(q, k, v, **kw, window=4, chunk_size=64)
        o64, _ = chunk_atlas(q.double(), k.double(), v.double(), **{n: x.double() for n, x in kw.items()},
                             window=4, chunk_size=64)
    assert torch.isfinite(o32).all() and o32.abs().max() < 10
    assert_close("o[:256]", o64[:, :256], o32[:, :256], 1e-4)
    assert_close("o", o64, o32, 0.1)


@pytest.mark.parametrize("change,match", [
    (dict(window=0), "window"), (dict(ns_steps=-1), "ns_steps"), (dict(chunk_size=0), "chunk_size"),
    (dict(g=torch.ones(2, 13, 2)), "g must be log decays"), (dict(beta=-torch.ones(2, 13, 2)), "beta"),
    (dict(gamma=torch.ones(2, 13)), "gamma must be"), (dict(w2=torch.zeros(2, 3, 5)), "w1 must be"),
])
def test_bad_inputs_are_named(change, match):
    (q, k, v), kw = inputs()
    opts = {**kw, "window": 2, **change}
    with pytest.raises(ValueError, match=match):
        chunk_atlas(q, k, v, **opts)


@pytest.mark.parametrize("chunk_size,given_chunk", [(4, 4), (4, 1), (1, 4)])
def test_batch_blocks_give_the_whole_batch_with_any_initial_state(monkeypatch, chunk_size, given_chunk):
    """Blocks of 4 (sequence, head) pairs over 3 sequences of 2 heads (blocks of 2 and 1), from a state made with
    another chunk size (which fields are None follows the chunk size in use), with gradients: equal to the reference
    loop; an empty batch keeps counting tokens."""
    import gatelab.ops.atlas.chunk as chunk

    (q, k, v), kw = inputs(B=3, T=11)
    opts = dict(window=3, chunk_size=chunk_size)
    _, st = recurrent_atlas(q[:, :4], k[:, :4], v[:, :4], **split(kw, slice(0, 4)), window=3,
                            chunk_size=given_chunk, output_final_state=True)
    monkeypatch.setattr(chunk, "BLOCK_PAIRS", 4)
    results = []
    for op in (recurrent_atlas, chunk_atlas):
        leaves = [x[:, 4:].clone().requires_grad_() for x in (q, k, v)]
        gates = {n: x.clone().requires_grad_() for n, x in split(kw, slice(4, None)).items()}
        o, end = op(*leaves, **gates, **opts, initial_state=st, output_final_state=True)
        (o.square().sum() + end.w2.sum()).backward()
        results.append([o, *(x for x in end[:9] if x is not None), *(x.grad for x in leaves)])
        assert end.offset == 11 and (end.start1 is None) == (chunk_size == 1)
    for ref, out in zip(*results, strict=True):
        torch.testing.assert_close(out, ref, atol=1e-10, rtol=1e-10)
    empty = [x[:0] for x in (q, k, v)]
    o, end = chunk_atlas(*empty, **{n: (x if n in ("w1", "w2") else x[:0]) for n, x in kw.items()}, **opts,
                         output_final_state=True)
    assert o.shape == (0, 11, 2, 4) and end.offset == 11
