"""The KV cache of softmax attention: preallocated key/value storage grown by doubling, so that decoding a token
writes one slot in place instead of copying the whole cache."""
from __future__ import annotations

from dataclasses import dataclass

import torch

MIN_CAPACITY = 16


@dataclass
class KVBuffer:
    """Storage shared by the caches of one decoding line: keys and values ``[B, Hkv, capacity, D]`` (head-major:
    decoding reads each head's keys as one contiguous block, which SDPA does much faster at long contexts). Slots
    ``[0, filled)`` have been written and never change again; only the cache that ends at ``filled`` (the newest
    one) may write the next slots in place, so every older cache keeps reading what it held."""

    k: torch.Tensor
    v: torch.Tensor
    filled: int

    @property
    def capacity(self) -> int:
        return self.k.shape[2]


@dataclass
class KVCache:
    """The state of a softmax-attention layer: the keys and values it still needs, slots ``[start, end)`` of
    ``buffer`` (all tokens seen, or the last ``window - 1`` with a sliding window), and ``offset``, the number of
    tokens seen (the position of the next one).

    ``k`` and ``v`` ``[B, length, Hkv, D]`` are views of the buffer (no copy). ``append`` writes new tokens into
    the buffer's free tail when this cache is the newest of its buffer and they fit; otherwise it moves the kept
    tokens into a new buffer of capacity ``max(16, 2 * length, length + new)``, so a cache decoded token by token
    is copied once per doubling of its length (amortised O(1) per token). While autograd records (grad enabled
    and a key or value that requires grad), ``append`` concatenates instead: autograd may have saved the views
    that an in-place write would change.
    """

    buffer: KVBuffer
    start: int
    end: int
    offset: int = 0

    @classmethod
    def wrap(cls, k: torch.Tensor, v: torch.Tensor, offset: int) -> KVCache:
        """A cache holding ``k, v [B, T, Hkv, D]`` as they are (no copy; full, so the next append reallocates)."""
        return cls(KVBuffer(k.transpose(1, 2), v.transpose(1, 2), k.shape[1]), 0, k.shape[1], offset)

    @classmethod
    def empty(cls, like: torch.Tensor, batch_size: int, n_kv_heads: int, head_dim: int) -> KVCache:
        """The cache before any token, with no storage yet (dtype and device of ``like``)."""
        k = like.new_zeros(batch_size, 0, n_kv_heads, head_dim)
        return cls.wrap(k, k.clone(), 0)

    @property
    def k(self) -> torch.Tensor:
        return self.buffer.k[:, :, self.start:self.end].transpose(1, 2)               # (B, length, Hkv, D)

    @property
    def v(self) -> torch.Tensor:
        return self.buffer.v[:, :, self.start:self.end].transpose(1, 2)               # (B, length, Hkv, D)

    @property
    def length(self) -> int:
        return self.end - self.start

    @property
    def capacity(self) -> int:
        """Slots allocated from ``start`` on: ``length`` of them filled, the rest free for appends."""
        return self.buffer.capacity - self.start

    def append(self, k: torch.Tensor, v: torch.Tensor) -> KVCache:
        """This cache followed by ``k, v [B, T, Hkv, D]`` (``offset`` advanced by T); this cache is unchanged."""
        n = k.shape[1]
        if _recording():
            return KVCache.wrap(torch.cat([self.k, k], 1), torch.cat([self.v, v], 1), self.offset + n)
        buf = self.buffer
        fits = (self.end == buf.filled and self.end + n <= buf.capacity
                and torch.promote_types(buf.k.dtype, k.dtype) == buf.k.dtype)     # (a narrower k is widened)
        cache = self if fits else self._moved(max(MIN_CAPACITY, 2 * self.length, self.length + n),
                                              torch.promote_types(buf.k.dtype, k.dtype))
        buf, end = cache.buffer, cache.end
        buf.k[:, :, end:end + n] = k.transpose(1, 2)
        buf.v[:, :, end:end + n] = v.transpose(1, 2)
        buf.filled = end + n
        return KVCache(buf, cache.start, end + n, self.offset + n)

    def keep_last(self, n: int) -> KVCache:
        """The same cache with only its last ``n`` tokens kept (a sliding window); nothing is copied."""
        return KVCache(self.buffer, max(self.start, self.end - n), self.end, self.offset)

    def compact(self) -> KVCache:
        """The same tokens in a buffer of ``max(16, 2 * length)`` slots when this one holds more (a sliding window's
        cache after a long prompt), so that its memory stays bounded by the window; as is while autograd records."""
        if self.buffer.capacity <= max(MIN_CAPACITY, 2 * self.length) or _recording():
            return self
        return self._moved(max(MIN_CAPACITY, 2 * self.length))

    def reorder(self, index: torch.Tensor) -> KVCache:
        """The cache of the sequences ``index [B']`` (beam search reorders the batch), in a new buffer."""
        return self._moved(self.capacity, index=index)

    def _moved(self, capacity: int, dtype: torch.dtype | None = None, index: torch.Tensor | None = None) -> KVCache:
        """The kept tokens (of the sequences ``index``, or all) at the start of a new buffer of ``capacity`` slots."""
        k, v = self.k, self.v
        if index is not None:
            k, v = k.index_select(0, index), v.index_select(0, index)                 # (B', length, Hkv, D)
        stores = []
        for t in (k, v):
            B, L, H, D = t.shape
            store = t.new_empty(B, H, capacity, D, dtype=dtype or t.dtype)            # (B, Hkv, capacity, D)
            store[:, :, :L] = t.transpose(1, 2)
            stores.append(store)
        return KVCache(KVBuffer(*stores, self.length), 0, self.length, self.offset)


def _recording() -> bool:
    """Whether autograd may record operations here: whenever gradients are on, since attention over the cache can be
    recorded through its queries alone (frozen keys and values), and a recorded op may have saved the buffer that an
    in-place append would overwrite. Decoding runs under ``no_grad`` (``generate``) and writes in place."""
    return torch.is_grad_enabled()
