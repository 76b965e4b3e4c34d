"""Flow attention: the fast form (cumulative sums, chunked read-out) equals the token-by-token reference, in float64
with gradients and states, causal and not; float32 stays close to float64 at T=4096."""
import re

import pytest
import torch

from gatelab.ops import flow_attention, flow_attention_reference
from gatelab.ops.flow_attn import FlowState
from tests.utils import assert_close


def inputs(B, T, H, K, V, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q = torch.sigmoid(torch.randn(B, T, H, K, generator=gen, dtype=dtype) * 2)
    k = torch.sigmoid(torch.randn(B, T, H, K, generator=gen, dtype=dtype) * 2)
    return q, k, torch.randn(B, T, H, V, generator=gen, dtype=dtype)


def run(fn, q, k, v, **opts):
    leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    o, state = fn(*leaves, **opts)
    (o * torch.linspace(-1, 1, o.numel(), dtype=o.dtype).view(o.shape)).sum().backward()
    return o.detach(), state, [t.grad for t in leaves]


def random_state(B, H, K, V, count=5):
    gen = torch.Generator().manual_seed(1)
    pos = [torch.rand(B, H, K, generator=gen, dtype=torch.float64) * count for _ in range(4)]
    comp = torch.rand(B, H, generator=gen, dtype=torch.float64) * count + 1
    return FlowState(*pos, comp, torch.randn(B, H, K, V, generator=gen, dtype=torch.float64), count)


@pytest.mark.parametrize("T", [1, 63, 100])
@pytest.mark.parametrize("chunk_size", [1, 16, 64])
@pytest.mark.parametrize("with_state", [False, True])
def test_causal_fast_equals_reference_with_gradients_and_states(T, chunk_size, with_state):
    q, k, v = inputs(2, T, 2, 5, 3)
    opts = dict(initial_state=random_state(2, 2, 5, 3) if with_state else None, output_final_state=True,
                chunk_size=chunk_size)
    o, s, grads = run(flow_attention, q, k, v, **opts)
    o_r, s_r, grads_r = run(flow_attention_reference, q, k, v, **opts)
    torch.testing.assert_close(o, o_r, atol=1e-10, rtol=1e-10)
    for a, b in zip(grads + list(s[:6]), grads_r + list(s_r[:6]), strict=True):
        torch.testing.assert_close(a.detach(), b.detach(), atol=1e-10, rtol=1e-10)
    assert s.count == s_r.count == T + (5 if with_state else 0)


@pytest.mark.parametrize("clamp", [0.5, 1.0, 5.0])
@pytest.mark.parametrize("lengths", [None, [17, 9]])
def test_non_causal_fast_equals_reference_and_ignores_padding(clamp, lengths):
    q, k, v = inputs(2, 17, 3, 4, 6)
    lengths = None if lengths is None else torch.tensor(lengths)
    o, _, grads = run(flow_attention, q, k, v, causal=False, clamp=clamp, lengths=lengths)
    o_r, _, grads_r = run(flow_attention_reference, q, k, v, causal=False, clamp=clamp, lengths=lengths)
    for a, b in zip([o] + grads, [o_r] + grads_r, strict=True):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)
    if lengths is not None:
        alone = flow_attention(q[1:, :9], k[1:, :9], v[1:, :9], causal=False, clamp=clamp)[0]
        torch.testing.assert_close(o[1:, :9], alone, atol=1e-12, rtol=1e-12)
        assert (o[1, 9:] == 0).all()


def test_prefix_then_rest_with_the_state_equals_the_whole():
    q, k, v = inputs(1, 30, 2, 4, 4)
    whole, _ = flow_attention(q, k, v)
    first, state = flow_attention(q[:, :11], k[:, :11], v[:, :11], output_final_state=True)
    rest, _ = flow_attention(q[:, 11:], k[:, 11:], v[:, 11:], initial_state=state, chunk_size=4)
    torch.testing.assert_close(torch.cat([first, rest], 1), whole, atol=1e-12, rtol=1e-12)


def test_gradcheck_reference_at_tiny_sizes():
    q, k, v = (t.requires_grad_() for t in inputs(1, 4, 1, 2, 2))
    assert torch.autograd.gradcheck(lambda *a: flow_attention_reference(*a)[0], (q, k, v))
    assert torch.autograd.gradcheck(lambda *a: flow_attention_reference(*a, causal=False)[0], (q, k, v))


@pytest.mark.parametrize("causal", [True, False])
def test_float32_long_sequence_is_finite_and_close_to_float64(causal):
    q, k, v = inputs(1, 4096, 2, 16, 16, dtype=torch.float32)
    with torch.no_grad():
        o32, _ = flow_attention(q, k, v, causal=causal)
        o64, _ = flow_attention(q.double(), k.double(), v.double(), causal=causal)
    assert_close("o", o64, o32, 1e-5)


def test_bad_inputs_are_explained():
    q, k, v = inputs(2, 5, 1, 2, 2)
    with pytest.raises(ValueError, match="lengths is for causal=False"):
        flow_attention(q, k, v, lengths=torch.tensor([5, 3]))
    with pytest.raises(ValueError, match="initial_state needs causal=True"):
        flow_attention(q, k, v, causal=False, initial_state=random_state(2, 1, 2, 2))
    with pytest.raises(ValueError, match=r"lengths must be \[B\]"):
        flow_attention(q, k, v, causal=False, lengths=torch.tensor([5]))
    for bad in ([0, 5], [6, 3], [-1, 2]):                       # a length 0 gave a NaN row, one past T no error
        for fn in (flow_attention, flow_attention_reference):
            with pytest.raises(ValueError, match=re.escape("lengths must be in [1, T] = [1, 5]") + ".*"
                               + re.escape(str(bad))):
                fn(q, k, v, causal=False, lengths=torch.tensor(bad))
    with pytest.raises(ValueError, match="initial_state.kv must be"):
        flow_attention(q, k, v, initial_state=random_state(2, 1, 2, 3))
