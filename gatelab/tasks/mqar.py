"""Multi-query associative recall (MQAR), with the semantics of Zoology's generator (Arora et al. 2023).

A sequence lists key-value pairs, then asks for the values of some of the keys again:

    inputs  2 8 4 7 | 0 0 4 0 0 0 0 0 2 0 0 0      (vocab 12, 2 pairs, length 16, no random fill)
    labels  . . . . | . . 7 . . . . . 8 . . .      ('.' is -100: not scored)

Keys come from ``[1, vocab/2)`` and values from ``[vocab/2, vocab)``; token 0 is the filler. Query gaps follow
the power law ``p(i) ~ a i^(a-1)`` (small ``a`` puts queries right after the context). With
``random_non_queries`` every filler is replaced by a uniform random token. Train and test come from disjoint
seed streams.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from ..config import ConfigError, check_ranges
from .base import TaskData

SPLIT_STREAM = {"train": 0, "test": 1}


@dataclass(kw_only=True)
class MQARConfig:
    """One MQAR slice: ``num_examples`` sequences of ``seq_len`` tokens with ``num_kv_pairs`` pairs each."""

    vocab_size: int = 512
    seq_len: int = 64
    num_kv_pairs: int = 4
    num_examples: int = 1000
    power_a: float = 0.01
    num_passes: int = 1
    random_non_queries: bool = True

    RANGES: ClassVar[dict[str, str]] = {"vocab_size": "[4, inf)", "seq_len": "[2, inf)", "num_kv_pairs": "[1, inf)",
                                        "num_examples": "[1, inf)", "power_a": "(0, inf)", "num_passes": "[1, inf)"}

    def validate(self) -> None:
        check_ranges(self, "mqar")
        if self.seq_len % 2:
            raise ConfigError(f"mqar: seq_len must be even; got {self.seq_len}")
        if self.vocab_size <= self.seq_len:
            raise ConfigError(f"mqar: vocab_size ({self.vocab_size}) must exceed seq_len ({self.seq_len})")
        needed = self.num_kv_pairs * 2 * self.num_passes + self.num_kv_pairs * 2
        if needed > self.seq_len:
            raise ConfigError(
                f"mqar: {self.num_kv_pairs} kv pairs x {self.num_passes} passes need seq_len >= {needed} "
                f"(2 tokens per pair per pass, plus room for the queries); got seq_len={self.seq_len}. "
                f"At this length use at most {self.seq_len // (2 * self.num_passes + 2)} pairs."
            )
        if self.num_kv_pairs >= self.vocab_size // 2:
            raise ConfigError(f"mqar: {self.num_kv_pairs} kv pairs need more than {self.vocab_size // 2} distinct keys")

    @property
    def slice_name(self) -> str:
        return f"len{self.seq_len}-kv{self.num_kv_pairs}"


def assemble(keys: np.ndarray, values: np.ndarray, gaps: np.ndarray, seq_len: int, num_passes: int = 1
             ) -> tuple[np.ndarray, np.ndarray]:
    """Lay out examples from chosen keys, values and query gaps (no random filler yet).

    keys, values, gaps: ``[N, P]``. Returns inputs and labels ``[N, seq_len - 1]``: the next-token shift of an
    example of seq_len tokens whose query for key j sits at ``context + 2 * gap_j``.
    """
    N, P = keys.shape
    context = 2 * P * num_passes
    kvs = np.zeros((N, 2 * P), dtype=np.int64)
    kvs[:, 0::2], kvs[:, 1::2] = keys, values
    kvs = np.tile(kvs, (1, num_passes))                                           # (N, context)
    queries = np.zeros((N, seq_len - context + 1), dtype=np.int64)                # (N, seq_len - context + 1)
    rows = np.arange(N)[:, None]
    np.put_along_axis(queries, 2 * gaps, keys, axis=1)
    examples = np.concatenate([kvs, queries], axis=1)                             # (N, seq_len + 1)
    labels = np.full_like(examples, -100)
    labels[rows, 2 * gaps + context + 1] = values
    return examples[:, :-1], labels[:, 1:]                                        # (N, seq_len) each


def mqar(cfg: MQARConfig, seed: int, split: str = "train") -> TaskData:
    """Generate one MQAR split. Deterministic in ``(cfg, seed, split)``; train and test streams are disjoint."""
    cfg.validate()
    if split not in SPLIT_STREAM:
        raise ConfigError(f"mqar: split must be one of {list(SPLIT_STREAM)}; got {split!r}")
    rng = np.random.default_rng([seed, SPLIT_STREAM[split], cfg.seq_len, cfg.num_kv_pairs])
    N, P, V = cfg.num_examples, cfg.num_kv_pairs, cfg.vocab_size
    keys = np.stack([rng.choice(np.arange(1, V // 2), P, replace=False) for _ in range(N)])
    values = np.stack([rng.choice(np.arange(V // 2, V), P, replace=False) for _ in range(N)])
    space = (cfg.seq_len - 2 * P * cfg.num_passes) // 2
    p = cfg.power_a * np.arange(1, space + 1, dtype=np.float64) ** (cfg.power_a - 1)
    p /= p.sum()
    gaps = np.stack([rng.choice(space, P, replace=False, p=p) for _ in range(N)])
    inputs, labels = assemble(keys, values, gaps, cfg.seq_len, cfg.num_passes)
    if cfg.random_non_queries:
        fill = rng.integers(0, V, size=inputs.shape)
        inputs = np.where(inputs == 0, fill, inputs)
    return TaskData(torch.from_numpy(inputs), torch.from_numpy(labels), [cfg.slice_name] * N)
