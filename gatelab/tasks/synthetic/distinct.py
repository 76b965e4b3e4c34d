"""Distinct examples, and splits that never share one: an example's split is a function of its content.

Every generated example is hashed (BLAKE2b of its tokens, as bytes where the vocabulary fits in 256 ids); the
hash's residue mod 4 names the only split it may land in (0, 1: train; 2: valid; 3: test). A builder draws
examples from its own seeded stream and keeps the first ``n`` distinct ones whose hash names its split. So train,
valid and test are disjoint whatever their seeds, sizes or the order they are built in, and a split holds no
example twice (Safari's generator deduplicates each split with ``torch.unique``; this extends that across splits
without building the others). The hash does not depend on the seed, so runs with different seeds also never test
on another run's training examples. Keeping only a quarter (or half) of the draws does not bias the examples: the
hash is unrelated to their structure.
"""
from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from typing import Any

import numpy as np

from ...config import ConfigError, check_ranges

BUCKETS = {"train": (0, 1), "valid": (2,), "test": (3,)}
NUM_BUCKETS = 4
BATCH_TOKENS = 1 << 20   # tokens per generated batch (not a function of n: a smaller set is a prefix of a larger one)
MAX_TRIES = 50           # draws per kept example before the space is declared too small


def bucket(example: np.ndarray) -> tuple[int, bytes]:
    """The split bucket (0-3) of one example ``[W]`` (uint8 or int64 tokens) and its digest."""
    digest = hashlib.blake2b(np.ascontiguousarray(example).tobytes(), digest_size=16).digest()
    return int.from_bytes(digest[:8], "little") % NUM_BUCKETS, digest


def draw_distinct(generate: Callable[[np.random.Generator, int], np.ndarray], rng: np.random.Generator, n: int,
                  split: str, width: int, vocab_size: int, field: str) -> np.ndarray:
    """The first ``n`` distinct examples ``[n, width]`` drawn by ``generate(rng, rows)`` (int64 ids below
    ``vocab_size``) whose hash puts them in ``split``. A space too small to hold ``n`` of them is a ConfigError
    naming ``field`` (the size option)."""
    rows = max(1, BATCH_TOKENS // width)
    key_dtype = np.uint8 if vocab_size <= 256 else np.int64
    kept: list[np.ndarray] = []
    seen: set[bytes] = set()
    drawn = 0
    while len(kept) < n:
        if drawn > MAX_TRIES * n * NUM_BUCKETS + 10_000:
            raise ConfigError(f"{field}={n} is more than this setting has distinct examples for the {split} split "
                              f"(found {len(kept)} in {drawn} draws): lower it, or lengthen the sequences or enlarge "
                              "the vocabulary")
        batch = generate(rng, rows)
        for example, key in zip(batch, batch.astype(key_dtype), strict=True):
            b, digest = bucket(key)
            if b in BUCKETS[split] and digest not in seen:
                seen.add(digest)
                kept.append(example)
                if len(kept) == n:
                    break
        drawn += rows
    return np.stack(kept)


def draw_split(cfg: Any, task: str, generate: Callable[[Any, np.random.Generator, int], np.ndarray], seed: int,
               split: str, seq_len: int | None, extra: int) -> tuple[Any, np.ndarray]:
    """What both synthetic builders share: check ``split`` and ``cfg`` (at ``seq_len`` if given, named ``task.*``
    in errors), then draw the split's distinct examples ``[N, seq_len + extra]`` with ``generate(cfg, rng, rows)``
    from the stream ``(seed, split, seq_len)``. N is ``cfg.train_examples`` for train, ``cfg.test_examples`` for
    valid and test. Returns the checked config and the examples."""
    if split not in BUCKETS:
        raise ConfigError(f"{task}: split must be one of {list(BUCKETS)}; got {split!r}")
    if seq_len is not None:
        cfg = dataclasses.replace(cfg, seq_len=seq_len)
    check_ranges(cfg, task)
    field = "train_examples" if split == "train" else "test_examples"
    rng = np.random.default_rng([seed, list(BUCKETS).index(split), cfg.seq_len])
    examples = draw_distinct(lambda r, rows: generate(cfg, r, rows), rng, getattr(cfg, field), split,
                             cfg.seq_len + extra, cfg.vocab_size, f"{task}.{field}")
    return cfg, examples
