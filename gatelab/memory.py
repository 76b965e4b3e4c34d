"""Process memory policy for CPU work: keep freed memory for reuse instead of handing it back to the OS.

PyTorch has no caching allocator on the CPU, so every large tensor (the logits of a batch, a chunked op's
``[B, T, ...]`` intermediates) is a fresh allocation. glibc serves blocks above its mmap threshold (128 KiB to
32 MiB, adapting) with new pages and unmaps them on free, so the next step pays a page fault per 4 KiB again.
Raising the mmap and trim thresholds makes freed blocks stay in the heap and get reused. Measured on the 2-core
CPU: a training step of the ``ptb-30min`` models 16-18% faster (attn) and 8-11% (gla) (README, "Benchmarks",
"Memory policy"). The price is that the process keeps its peak heap.
"""
from __future__ import annotations

import ctypes
import os
import sys

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_KEEP = 1 << 30   # bytes: blocks up to 1 GiB come from the heap, and up to 1 GiB of free heap is kept


_applied = False


def keep_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds to 1 GiB for this process; True if applied. Does nothing (False) off
    glibc Linux or when the environment sets ``GATELAB_KEEP_FREED_MEMORY=0``. Call it once, before the work."""
    global _applied
    if os.environ.get("GATELAB_KEEP_FREED_MEMORY", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    _applied = bool(libc.mallopt(_M_MMAP_THRESHOLD, _KEEP)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, _KEEP))
    return _applied


def keeps_freed_memory() -> bool:
    """Whether ``keep_freed_memory`` applied the policy in this process (worker processes it starts copy it)."""
    return _applied
