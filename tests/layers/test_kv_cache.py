"""The preallocated KV cache: capacity grows by doubling, decoding writes in place (no full copy per token), views
of the filled prefix, a bounded and exact sliding window, the old concatenating semantics, forks, batch reorder,
and autograd through the cache."""
import pytest
import torch

from gatelab.layers.token.kv_cache import KVCache
from gatelab.registry import MIXERS


def tokens(n: int, batch: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, n, 3, 4, generator=g), torch.randn(batch, n, 3, 4, generator=g)   # (B, n, Hkv, D)


def test_capacity_doubles_and_appends_within_it_write_in_place():
    cache = KVCache.empty(torch.zeros(()), 2, 3, 4)
    k_all, v_all = tokens(100)
    capacities, storages = [], []
    with torch.no_grad():
        for t in range(100):
            ptr = cache.buffer.k.data_ptr()
            cache = cache.append(k_all[:, t:t + 1], v_all[:, t:t + 1])
            if not capacities or cache.capacity != capacities[-1]:
                capacities.append(cache.capacity)
                storages.append(cache.buffer.k.data_ptr())
            else:
                assert cache.buffer.k.data_ptr() == ptr, f"token {t} reallocated within capacity"
    assert capacities == [16, 32, 64, 128]
    assert len(set(storages)) == len(storages)
    assert cache.length == cache.offset == 100
    assert torch.equal(cache.k, k_all) and torch.equal(cache.v, v_all)
    assert cache.k.untyped_storage().data_ptr() == cache.buffer.k.untyped_storage().data_ptr()   # a view


def test_a_prefilled_cache_is_held_without_copy_and_doubles_from_its_length():
    k, v = tokens(40)
    cache = KVCache.wrap(k, v, 40)
    assert cache.k.data_ptr() == k.data_ptr() and cache.capacity == 40
    with torch.no_grad():
        cache = cache.append(*tokens(1, seed=1))
    assert cache.capacity == 80 and cache.length == 41 and torch.equal(cache.k[:, :40], k)


@pytest.mark.parametrize("window", [None, 1, 2, 5, 40])
def test_equals_the_concatenating_cache_over_many_steps(window):
    """Appends of 1..7 tokens, through several reallocations: the cache always holds what concatenating every
    token (and keeping the last window - 1) held, and a sliding window's storage stays bounded."""
    cache, ref_k, ref_v = KVCache.empty(torch.zeros(()), 2, 3, 4), torch.zeros(2, 0, 3, 4), torch.zeros(2, 0, 3, 4)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for i in range(60):
            k, v = tokens(int(torch.randint(1, 8, (), generator=g)), seed=i)
            cache = cache.append(k, v)
            ref_k, ref_v = torch.cat([ref_k, k], 1), torch.cat([ref_v, v], 1)
            kept = slice(cache.offset - cache.length, None)
            assert torch.equal(cache.k, ref_k[:, kept]) and torch.equal(cache.v, ref_v[:, kept])
            if window is not None:
                cache = cache.keep_last(window - 1)
                assert cache.length == min(window - 1, ref_k.shape[1])
                assert cache.buffer.capacity <= max(16, 2 * (window - 1) + 7)
    assert cache.offset == ref_k.shape[1]


def test_an_older_cache_stays_valid_when_two_continuations_fork_from_it():
    k, v = tokens(5)
    with torch.no_grad():
        base = KVCache.empty(k, 2, 3, 4).append(k, v)
        a_k, a_v = tokens(3, seed=1)
        b_k, b_v = tokens(2, seed=2)
        a = base.append(a_k, a_v)                 # the newest: written in place
        b = base.append(b_k, b_v)                 # base is no longer the newest: b copies
    assert a.buffer is base.buffer and b.buffer is not base.buffer
    assert torch.equal(base.k, k) and torch.equal(base.v, v)
    assert torch.equal(a.k, torch.cat([k, a_k], 1)) and torch.equal(a.v, torch.cat([v, a_v], 1))
    assert torch.equal(b.k, torch.cat([k, b_k], 1)) and torch.equal(b.v, torch.cat([v, b_v], 1))


def test_reorder_selects_the_batch_in_a_new_buffer():
    k, v = tokens(6, batch=3)
    with torch.no_grad():
        cache = KVCache.empty(k, 3, 3, 4).append(k, v)
        index = torch.tensor([2, 0, 0])
        moved = cache.reorder(index)
        assert moved.buffer is not cache.buffer and moved.capacity == cache.capacity and moved.offset == 6
        assert torch.equal(moved.k, k[index]) and torch.equal(moved.v, v[index])
        more_k, more_v = tokens(2, batch=3, seed=3)
        moved = moved.append(more_k, more_v)
    assert torch.equal(moved.k, torch.cat([k[index], more_k], 1)) and torch.equal(cache.k, k)


@pytest.mark.parametrize("key,opts", [("attn", {}), ("gated_attn", {"n_kv_heads": 1}), ("swa", {"window": 5}),
                                      ("liger", {"window": 4})])
def test_decoding_a_long_sequence_equals_the_full_forward(key, opts):
    """70 single-token steps after a prefill of 3 (several reallocations): each step's output equals the full
    forward, and a sliding window's cache stays small."""
    torch.manual_seed(0)
    layer = MIXERS.get(key)(16, n_heads=2, **opts).double().eval()
    x = torch.randn(2, 73, 16, dtype=torch.float64)
    with torch.no_grad():
        full, _ = layer(x)
        y, state = layer(x[:, :3])
        steps = [y]
        for t in range(3, 73):
            y, state = layer.step(x[:, t:t + 1], state)
            steps.append(y)
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-10, rtol=1e-10)
    cache = getattr(state, "kv", state)
    assert cache.offset == 73
    if "window" in opts:
        assert cache.length == opts["window"] - 1 and cache.buffer.capacity == 16
    else:
        assert cache.length == 73 and cache.buffer.capacity == 128         # 3, then 16, 32, 64, 128


def test_a_long_prompt_leaves_a_sliding_window_cache_of_bounded_storage():
    layer = MIXERS.get("swa")(16, n_heads=2, window=5).eval()
    with torch.no_grad():
        _, cache = layer(torch.randn(1, 200, 16))
    assert cache.length == 4 and cache.buffer.capacity == 16


@pytest.mark.parametrize("key,opts", [("attn", {}), ("swa", {"window": 3})])
def test_gradients_through_the_cache_equal_those_of_the_full_forward(key, opts):
    """With autograd recording, the cache concatenates (no in-place write into tensors autograd saved): prefill
    then single steps give the full forward's gradients."""
    torch.manual_seed(0)
    layer = MIXERS.get(key)(16, n_heads=2, **opts).double()
    x = torch.randn(1, 9, 16, dtype=torch.float64, requires_grad=True)
    (full_grad,) = torch.autograd.grad(layer(x)[0].square().sum(), x)
    y, state = layer(x[:, :2])
    outs = [y]
    for t in range(2, 9):
        y, state = layer.step(x[:, t:t + 1], state)
        outs.append(y)
    (grad,) = torch.autograd.grad(torch.cat(outs, 1).square().sum(), x)
    torch.testing.assert_close(grad, full_grad, atol=1e-10, rtol=1e-10)


def test_a_cache_from_no_grad_continues_under_grad_and_back():
    torch.manual_seed(0)
    layer = MIXERS.get("attn")(16, n_heads=2).double()
    x = torch.randn(1, 6, 16, dtype=torch.float64)
    full, _ = layer(x)
    with torch.no_grad():
        _, state = layer(x[:, :2])
    y3, state = layer.step(x[:, 2:3], state)      # recording: concatenates
    y3.sum().backward()
    with torch.no_grad():
        rest, _ = layer(x[:, 3:], state)
    torch.testing.assert_close(torch.cat([y3, rest], 1), full[:, 2:], atol=1e-10, rtol=1e-10)


def test_frozen_keys_and_values_under_grad_are_not_overwritten_in_place():
    """Attention over the cache is recorded through the queries alone when keys and values need no gradient: an
    append must not write into the buffer such a recorded op saved (backward would then fail or be wrong)."""
    torch.manual_seed(0)
    k0, v0 = torch.randn(1, 4, 2, 8), torch.randn(1, 4, 2, 8)
    with torch.no_grad():
        cache = KVCache.wrap(k0, v0, 4)
    q = torch.randn(1, 1, 2, 8, requires_grad=True)
    keys = cache.k
    scores = torch.einsum("bqhd,bkhd->bhqk", q, keys)                   # recorded through q; saves keys
    cache.append(torch.randn(1, 1, 2, 8), torch.randn(1, 1, 2, 8))
    scores.sum().backward()                                             # keys unchanged: no version error
    torch.testing.assert_close(q.grad, keys.sum(1, keepdim=True))


def test_a_narrower_dtype_appends_in_place_into_a_wider_cache():
    with torch.no_grad():
        cache = KVCache.wrap(torch.randn(1, 4, 1, 8), torch.randn(1, 4, 1, 8), 4).append(
            torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8))
        storage = cache.buffer.k.data_ptr()
        half = torch.randn(1, 1, 1, 8, dtype=torch.bfloat16)
        cache = cache.append(half, half.clone())
    assert cache.buffer.k.data_ptr() == storage and cache.k.dtype == torch.float32
