"""Selective copying (Gu & Dao 2023, "Mamba", §4.1 and App. E.1): remember the data tokens scattered among noise
and emit them, in order, after the markers.

The paper's generator was not released; it is the S4 repository's ``copying`` dataset with ``variable: true``
(``src/dataloaders/datasets/copying.py``), whose layout this follows. With ``M = num_tokens`` data tokens,
``V = vocab_size`` and ``T = seq_len``:

    inputs  . 3 . . 9 . . 4 . . | # # #       noise 0 (".") with the M data tokens at random positions among the
    labels  . . . . . . . . . . | 3 9 4       first T - M; then M markers V - 1 ("#"); the label at the i-th
                                              marker is the i-th data token (-100 elsewhere: loss and accuracy
                                              only there)

Data tokens are uniform in ``[1, V - 2]`` (V - 2 values), positions a uniform M-subset of the first T - M (S4's
``randperm(L + M)[:M]``, sorted), so S4's ``l_noise`` is T - 2M. ``variable = False`` puts the data tokens first
(the classic copying task, which time-invariant models solve; the selective one needs input-dependent gating).

Paper setting: T = 4096, V = 16 (noise, marker and 14 data values), M = 16; 2-layer models with d = 64, batch 64,
lr 1e-4, 400k steps of fresh data. CPU defaults: T = 256, M = 16, V = 16, a fixed set of 10,000 training and 1,000
evaluation sequences (S4's ``n_train`` / ``n_eval``). Examples are distinct and never in two splits
(``distinct.py``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch

from ...config import ConfigError
from ..base import TaskData
from .distinct import draw_split

NOISE = 0


@dataclass(kw_only=True)
class SelectiveCopyingConfig:
    """``seq_len`` tokens holding ``num_tokens`` data tokens, then as many markers; ``vocab_size`` counts the
    noise and marker tokens; ``variable``: data at random positions (selective) or first (plain copying).
    ``extrapolate``: the test sets' lengths as multiples of ``seq_len`` (length generalisation; 1: the training
    length)."""

    seq_len: int = 256
    num_tokens: int = 16
    vocab_size: int = 16
    variable: bool = True
    train_examples: int = 10000
    test_examples: int = 1000
    extrapolate: list[int] = field(default_factory=lambda: [1])

    RANGES: ClassVar[dict[str, str]] = {"seq_len": "[2, inf)", "num_tokens": "[1, inf)", "vocab_size": "[3, inf)",
                                        "train_examples": "[1, inf)", "test_examples": "[1, inf)",
                                        "extrapolate": "[1, inf)"}

    def check(self) -> None:
        if self.seq_len < 2 * self.num_tokens:
            raise ConfigError(f"selective_copying.seq_len={self.seq_len} is too short for {self.num_tokens} data "
                              f"tokens and their {self.num_tokens} markers: it must be >= {2 * self.num_tokens}")

    @property
    def marker(self) -> int:
        return self.vocab_size - 1

    @property
    def slice_name(self) -> str:
        return f"len{self.seq_len}"


def generate(cfg: SelectiveCopyingConfig, rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` examples ``[n, seq_len + num_tokens]``: the input sequence, then the data tokens it must emit."""
    M, T = cfg.num_tokens, cfg.seq_len
    tokens = rng.integers(1, cfg.vocab_size - 1, size=(n, M))                    # (n, M)
    if cfg.variable:
        order = np.argpartition(rng.random((n, T - M)), M - 1, axis=1)[:, :M]    # (n, M): a random M-subset
        positions = np.sort(order, axis=1)
    else:
        positions = np.broadcast_to(np.arange(M), (n, M))
    inputs = np.full((n, T), NOISE, dtype=np.int64)
    np.put_along_axis(inputs, positions, tokens, axis=1)
    inputs[:, T - M:] = cfg.marker
    return np.concatenate([inputs, tokens], axis=1)                               # (n, T + M)


def selective_copying(cfg: SelectiveCopyingConfig, seed: int, split: str = "train", seq_len: int | None = None
                      ) -> TaskData:
    """One split of selective copying, at ``seq_len`` if given (length-generalisation sets) else ``cfg.seq_len``.
    inputs, labels ``[N, T]``; N is ``train_examples`` for train, ``test_examples`` for valid and test.
    Deterministic in ``(cfg, seed, split, seq_len)``."""
    cfg, examples = draw_split(cfg, "selective_copying", generate, seed, split, seq_len, extra=cfg.num_tokens)
    T, M, n = cfg.seq_len, cfg.num_tokens, len(examples)
    labels = np.full((n, T), -100, dtype=np.int64)
    labels[:, T - M:] = examples[:, T:]                                           # the i-th marker emits token i
    return TaskData(torch.from_numpy(examples[:, :T].copy()), torch.from_numpy(labels), [cfg.slice_name] * n)
