"""Every chunked op equals its reference recurrence in float64 (DESIGN §4): outputs, final state, all gradients."""
import pytest
import torch
import torch.nn.functional as F

from gatelab.ops import (
    chunk_gated_delta_rule,
    chunk_gla,
    chunk_simple_gla,
    recurrent_gated_delta_rule,
    recurrent_gla,
    recurrent_simple_gla,
)

# name: (chunked form, reference, gate kind: "channel" [B,T,H,K], "head" [B,T,H] or None, takes beta)
OPS = {
    "gla": (chunk_gla, recurrent_gla, "channel", False),
    "simple_gla": (chunk_simple_gla, recurrent_simple_gla, "head", False),
    "linear_attn": (chunk_simple_gla, recurrent_simple_gla, None, False),
    "gated_delta_rule": (chunk_gated_delta_rule, recurrent_gated_delta_rule, "head", True),
    "delta_rule": (chunk_gated_delta_rule, recurrent_gated_delta_rule, None, True),
}


def make_inputs(op, B, T, H, K, V, strength, use_h0, dtype=torch.float64, seed=0):
    _, _, gate, uses_beta = OPS[op]
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(B, T, H, K, generator=gen, dtype=dtype)
    k = torch.randn(B, T, H, K, generator=gen, dtype=dtype)
    v = torch.randn(B, T, H, V, generator=gen, dtype=dtype)
    kw = {}
    if uses_beta:  # the delta rule needs unit keys (as its layers give it) and beta in [0, 1]
        k = F.normalize(k, dim=-1)
        kw["beta"] = torch.rand(B, T, H, generator=gen, dtype=dtype)
    if gate is not None:
        shape = (B, T, H, K) if gate == "channel" else (B, T, H)
        kw["g"] = F.logsigmoid(torch.randn(*shape, generator=gen, dtype=dtype)) / strength
    h0 = torch.randn(B, H, K, V, generator=gen, dtype=dtype) if use_h0 else None
    return (q, k, v), kw, h0


def run(fn, qkv, kw, h0, chunk_size):
    leaves = [t.clone().requires_grad_() for t in qkv]
    kw = {n: t.clone().requires_grad_() for n, t in kw.items()}
    h0 = h0.clone().requires_grad_() if h0 is not None else None
    o, ht = fn(*leaves, **kw, initial_state=h0, output_final_state=True, chunk_size=chunk_size)
    gen = torch.Generator().manual_seed(1)
    do = torch.randn(o.shape, generator=gen, dtype=o.dtype)
    dht = torch.randn(ht.shape, generator=gen, dtype=ht.dtype)
    ((o * do).sum() + (ht * dht).sum()).backward()
    grads = {"dq": leaves[0].grad, "dk": leaves[1].grad, "dv": leaves[2].grad}
    grads.update({f"d{n}": t.grad for n, t in kw.items()})
    if h0 is not None:
        grads["dh0"] = h0.grad
    return o, ht, grads


CASES = [
    pytest.param(op, T, C, K, V, s, h0, id=f"{op}-T{T}-C{C}-K{K}-V{V}-g{s}-{'h0' if h0 else 'noh0'}")
    for op, (_, _, gate, _) in OPS.items()
    for T in (1, 63, 100)
    for C in (1, 16, 64)
    for K, V in ((16, 16), (12, 20))
    for s in ((0.1, 1.0, 10.0) if gate else (1.0,))
    for h0 in (False, True)
]


@pytest.mark.parametrize("op,T,C,K,V,strength,use_h0", CASES)
def test_chunk_equals_recurrence_float64(op, T, C, K, V, strength, use_h0):
    chunk, ref = OPS[op][:2]
    qkv, kw, h0 = make_inputs(op, 2, T, 3, K, V, strength, use_h0)
    o_ref, h_ref, g_ref = run(ref, qkv, kw, h0, C)
    o, h, grads = run(chunk, qkv, kw, h0, C)
    torch.testing.assert_close(o, o_ref, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(h, h_ref, atol=1e-10, rtol=1e-10)
    assert grads.keys() == g_ref.keys()
    for name in grads:
        torch.testing.assert_close(grads[name], g_ref[name], atol=1e-10, rtol=1e-10, msg=f"{name} differs")


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("form,T,H,chunk_size", [("reference", 5, 2, 64), ("chunked", 7, 1, 6)])
def test_gradcheck(op, form, T, H, chunk_size):
    """gradcheck at tiny sizes: the reference, and the chunked form with a chunk that does not divide T."""
    fn = OPS[op][1] if form == "reference" else OPS[op][0]
    qkv, kw, h0 = make_inputs(op, 1, T, H, 3, 2, 1.0, True)
    names = list(kw)
    inputs = tuple(t.requires_grad_() for t in (*qkv, *kw.values(), h0))

    def f(q, k, v, *rest):
        gates = dict(zip(names, rest[:-1], strict=True))
        return fn(q, k, v, **gates, initial_state=rest[-1], output_final_state=True, chunk_size=chunk_size)

    assert torch.autograd.gradcheck(f, inputs)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("strength", [0.1, 1.0, 10.0])
def test_long_sequence_float32(op, strength):
    """T=2048 in float32: finite, and within 1e-5 relative RMS of the float64 recurrence (outputs and state)."""
    from tests.utils import assert_close

    chunk, ref = OPS[op][:2]
    qkv, kw, h0 = make_inputs(op, 1, 2048, 2, 16, 16, strength, True, dtype=torch.float32)
    with torch.no_grad():
        o_ref, h_ref = ref(*(t.double() for t in qkv), **{n: t.double() for n, t in kw.items()},
                           initial_state=h0.double(), output_final_state=True)
    leaves = [t.clone().requires_grad_() for t in qkv]
    o, h = chunk(*leaves, **kw, initial_state=h0, output_final_state=True)
    (o.sum() + h.sum()).backward()
    assert_close("o", o_ref, o, 1e-5)
    assert_close("h", h_ref, h, 1e-5)
    assert all(torch.isfinite(t.grad).all() for t in leaves)


@pytest.mark.parametrize("spread", [0.0, 0.05, 1.0])
def test_delta_rule_coupled_keys_float32(spread):
    """The per-chunk inverse (I + A)^-1 in float32 when keys nearly coincide (spread 0: every key the same, beta 1,
    no decay, the most strongly coupled chunk): outputs, state and gradients within 1e-5 relative RMS of float64."""
    from tests.utils import assert_close

    gen = torch.Generator().manual_seed(0)
    B, T, H, D = 1, 256, 2, 64
    q, v = torch.randn(B, T, H, D, generator=gen), torch.randn(B, T, H, D, generator=gen)
    k = F.normalize(torch.randn(1, 1, H, D, generator=gen) + spread * torch.randn(B, T, H, D, generator=gen), dim=-1)
    beta = torch.ones(B, T, H)
    results = {}
    for dtype in (torch.float32, torch.float64):
        leaves = [t.to(dtype, copy=True).requires_grad_() for t in (q, k, v)]
        o, h = chunk_gated_delta_rule(*leaves, beta=beta.to(dtype), output_final_state=True, chunk_size=64)
        (o.square().sum() + h.sum()).backward()
        results[dtype] = (o, h, *(t.grad for t in leaves))
    for name, ref, out in zip(("o", "h", "dq", "dk", "dv"), results[torch.float64], results[torch.float32],
                              strict=True):
        assert_close(name, ref, out, 1e-5)
