"""The LMU memory: the Legendre delay system as defined and discretised, the memory decodes delayed inputs through
the Legendre polynomials, and the chunked and FFT forms equal the recurrence (values and every gradient)."""
import pytest
import torch

from gatelab.ops import chunk_lmu, fft_lmu, recurrent_lmu
from gatelab.ops.lmu import legendre_decoder, legendre_delay_system, lmu_system, zoh_discretize
from tests.utils import assert_close

FAST = {"chunk": chunk_lmu, "fft": fft_lmu}


def inputs(Bsz, T, H, order, theta, use_h0, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    u = torch.randn(Bsz, T, H, generator=gen, dtype=dtype)
    h0 = torch.randn(Bsz, H, order, generator=gen, dtype=dtype) if use_h0 else None
    A, B = lmu_system(order, theta, dtype=dtype)
    return u, A, B, h0


def run(fn, u, A, B, h0, chunk_size=64):
    leaves = [t.clone().requires_grad_() for t in (u, A, B)]
    h0 = h0.clone().requires_grad_() if h0 is not None else None
    m, final = fn(*leaves, initial_state=h0, output_final_state=True, chunk_size=chunk_size)
    gen = torch.Generator().manual_seed(1)
    ((m * torch.randn(m.shape, generator=gen, dtype=m.dtype)).sum()
     + (final * torch.randn(final.shape, generator=gen, dtype=m.dtype)).sum()).backward()
    leaves += [h0] if h0 is not None else []
    return m, final, [torch.zeros_like(t) if t.grad is None else t.grad for t in leaves]   # (A unused at T=1)


def test_the_continuous_system_is_the_legendre_delay_system():
    theta, N = 7.0, 5
    A, B = legendre_delay_system(N, theta)
    for i in range(N):
        assert B[i] == pytest.approx((2 * i + 1) / theta * (-1) ** i)
        for j in range(N):
            assert A[i, j] == pytest.approx((2 * i + 1) / theta * (-1 if i < j else (-1) ** (i - j + 1)))


def test_zero_order_hold_is_the_exact_discretisation():
    A, B = legendre_delay_system(6, 9.0)
    A_bar, B_bar = zoh_discretize(A, B)
    torch.testing.assert_close(A_bar, torch.linalg.matrix_exp(A), atol=1e-13, rtol=1e-13)
    # B̄ = A^{-1} (e^A - I) B, the integral of e^{As} B over one step
    torch.testing.assert_close(B_bar, torch.linalg.solve(A, (A_bar - torch.eye(6, dtype=A.dtype)) @ B),
                               atol=1e-12, rtol=1e-12)


def test_zero_order_hold_equals_scipy_cont2discrete():
    signal = pytest.importorskip("scipy.signal")
    A, B = legendre_delay_system(8, 128.0)
    Ad, Bd, *_ = signal.cont2discrete((A.numpy(), B[:, None].numpy(), torch.ones(1, 8).numpy(), [[0.0]]),
                                      dt=1.0, method="zoh")
    A_bar, B_bar = lmu_system(8, 128.0)
    torch.testing.assert_close(A_bar, torch.from_numpy(Ad), atol=1e-13, rtol=1e-12)
    torch.testing.assert_close(B_bar, torch.from_numpy(Bd[:, 0]), atol=1e-13, rtol=1e-12)


@pytest.mark.parametrize("delay", [0.0, 12.0, 30.0, 59.0])
def test_the_memory_decodes_the_delayed_input_through_legendre_polynomials(delay):
    order, theta, T = 12, 60.0, 400
    t = torch.arange(T, dtype=torch.float64)
    u = torch.sin(2 * torch.pi * t / 150) + 0.5 * torch.cos(2 * torch.pi * t / 97)     # slow next to theta
    m, _ = recurrent_lmu(u.view(1, T, 1), *lmu_system(order, theta))
    read = m[0, :, 0] @ legendre_decoder(order, theta, torch.tensor([delay]))[0]       # (T,)
    later = torch.arange(200, T)
    err = (read[later] - u[later - int(delay)]).abs().max()
    assert err < 0.06, f"u(t - {delay}) read back with error {err:.3f}"
    other = (read[later] - u[later - int(theta - delay)]).abs().max()
    assert delay == theta / 2 or other > 5 * err    # the decoder tells the delay from its mirror image


@pytest.mark.parametrize("form,chunk_size", [("chunk", 1), ("chunk", 16), ("chunk", 64), ("fft", 64)])
@pytest.mark.parametrize("T", [1, 63, 100])
@pytest.mark.parametrize("theta", [2.0, 20.0, 500.0])   # fast, medium and slow memories
@pytest.mark.parametrize("use_h0", [False, True])
def test_fast_forms_equal_the_recurrence_float64(form, chunk_size, T, theta, use_h0):
    u, A, B, h0 = inputs(2, T, 3, 5, theta, use_h0)
    m_ref, f_ref, g_ref = run(recurrent_lmu, u, A, B, h0)
    m, f, grads = run(FAST[form], u, A, B, h0, chunk_size)
    torch.testing.assert_close(m, m_ref, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(f, f_ref, atol=1e-10, rtol=1e-10)
    for name, a, b in zip(("du", "dA", "dB", "dh0"), grads, g_ref, strict=False):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10, msg=f"{name} differs")


def test_order_one_is_a_leaky_integrator():
    u, A, B, _ = inputs(1, 9, 1, 1, 3.0, False)
    assert A.shape == (1, 1) and A[0, 0] == pytest.approx(torch.exp(torch.tensor(-1 / 3.0)).item())
    for form in FAST.values():
        torch.testing.assert_close(form(u, A, B)[0], recurrent_lmu(u, A, B)[0], atol=1e-12, rtol=1e-12)


def test_reference_gradcheck():
    u, A, B, h0 = inputs(1, 4, 2, 3, 2.0, True)
    leaves = tuple(t.requires_grad_() for t in (u, A, B, h0))
    assert torch.autograd.gradcheck(lambda u, A, B, h0: recurrent_lmu(u, A, B, initial_state=h0,
                                                                      output_final_state=True), leaves)


def test_chunked_form_is_exactly_causal_and_fft_form_up_to_rounding():
    u, A, B, h0 = inputs(1, 40, 1, 6, 10.0, True)
    u.requires_grad_()
    for form, bound in (("chunk", 0.0), ("fft", 1e-13)):
        m, _ = FAST[form](u, A, B, initial_state=h0, chunk_size=8)
        (grad,) = torch.autograd.grad(m[:, 17].sum(), u)
        assert grad[:, 18:].abs().max() <= bound * grad.abs().max(), form
        assert grad[:, 17].abs().max() > 0


@pytest.mark.parametrize("form", sorted(FAST))
def test_long_sequence_float32(form):
    u, A, B, h0 = inputs(1, 4096, 2, 32, 256.0, True, dtype=torch.float32)
    with torch.no_grad():
        m_ref, f_ref = recurrent_lmu(u.double(), *lmu_system(32, 256.0), initial_state=h0.double(),
                                     output_final_state=True)
        m, f = FAST[form](u, A, B, initial_state=h0, output_final_state=True)
    assert_close("m", m_ref, m, 1e-5)
    assert_close("final", f_ref, f, 1e-5)


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="order"):
        lmu_system(0, 10.0)
    with pytest.raises(ValueError, match="theta"):
        lmu_system(4, 0.0)
    with pytest.raises(ValueError, match="theta"):
        legendre_decoder(4, -1.0, torch.zeros(1))
    u, A, B, _ = inputs(1, 5, 1, 3, 4.0, False)
    with pytest.raises(ValueError, match="A must be"):
        chunk_lmu(u, A[:2], B)
    with pytest.raises(ValueError, match="initial_state"):
        fft_lmu(u, A, B, initial_state=torch.zeros(1, 1, 2, dtype=u.dtype))
    with pytest.raises(ValueError, match="chunk_size"):
        chunk_lmu(u, A, B, chunk_size=0)


@pytest.mark.parametrize("fn", [recurrent_lmu, chunk_lmu, fft_lmu])
def test_bfloat16_input_runs_the_memory_in_float32(fn):
    """u in bfloat16 with the float64 system: the memory is computed in float32 (the final memory returned so,
    within float32 rounding of a float64 run) and returned in bfloat16 (the float64 memory rounded)."""
    u, A, B, h0 = inputs(2, 50, 3, 8, 20.0, use_h0=True)
    u16 = u.to(torch.bfloat16)
    m, final = fn(u16, A, B, initial_state=h0, output_final_state=True, chunk_size=16)
    m64, final64 = recurrent_lmu(u16.double(), A, B, initial_state=h0, output_final_state=True)
    assert m.dtype == torch.bfloat16 and final.dtype == torch.float32
    assert_close("final", final64, final, 1e-5)
    torch.testing.assert_close(m.double(), m64, atol=0, rtol=2 ** -8)

