"""Induction heads (Gu & Dao 2023, "Mamba", §4.1 and Table 2), with the generator of Safari/H3
(``src/dataloaders/synthetics.py``, ``generate_induction_head`` @ 42f326e): after the copy prefix, recall the
token that followed its first occurrence.

An example of ``n = seq_len - 1`` ordinary tokens, the copy prefix and the answer (``seq_len + 1`` tokens, fed
with the usual next-token shift, so the model sees ``seq_len``):

    sequence  7 2 => 5 9 3 2 => 5        ("=>" is the copy prefix; the ordinary tokens are i.i.d. uniform)
    inputs    7 2 => 5 9 3 2 =>
    labels    . . .  . . . . 5           (test sets, and training with score="final": the last position only)

Safari's rules: a trigger position ``p`` is drawn uniformly from ``[0, n - 2)``; the prefix is written at ``p`` and
the token at ``p + 1`` is the answer. With ``num_triggers`` > 1 (Safari's ``induction_num_triggers``; default 1),
each example uses that many draws with probability 1/2, else 1; the sorted draws are kept greedily when more than
one apart, and every kept trigger is followed by the same answer token. Then the prefix and the answer close the
sequence. Token ids: 0 is Safari's noop ".", unused by this task (it fills the padding of a shorter length when
slices of several lengths are joined), 1 is the copy prefix, ``2 .. vocab_size - 1`` are the ordinary tokens
(``vocab_size - 2`` of them, as in Safari, whose ids are the same tokens in string order).

Scoring: Safari trains on the full next-token loss (``score = "all"``, the default; the random tokens cost
``ln(vocab_size - 2)`` whatever the model) and tests on the final token only, which every valid and test set here
does whatever ``score`` says; ``score = "final"`` trains on the final token only. Safari deduplicates each split;
here examples are distinct and never in two splits (``distinct.py``).

Paper setting: vocabulary 16, training length 256, test lengths 2^6 to 2^20; 2-layer models with d = 64, 25k
steps, batch 8. Safari's defaults: 5,000 training and 500 test sequences, which are the CPU defaults here, with
``seq_len = 256`` (Safari's ``input_seq_len`` is ``seq_len - 1``); length-generalisation sets come from the
``seq_len`` argument (we go up to 64x the training length).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

import numpy as np
import torch

from ..base import TaskData
from .distinct import draw_split

COPY_PREFIX = 1       # id 0 is Safari's noop ".", which this task never emits
FIRST_ORDINARY = 2


@dataclass(kw_only=True)
class InductionHeadsConfig:
    """Sequences of ``seq_len`` input tokens over ``vocab_size`` ids (two of them special); ``score``: which
    training positions carry a label (test sets always score the final token only). ``extrapolate``: the test
    sets' lengths as multiples of ``seq_len`` (Mamba's Table 2 trains at 256 and tests at up to 2^20)."""

    seq_len: int = 256
    vocab_size: int = 16
    num_triggers: int = 1
    score: Literal["all", "final"] = "all"
    train_examples: int = 5000
    test_examples: int = 500
    extrapolate: list[int] = field(default_factory=lambda: [1])

    RANGES: ClassVar[dict[str, str]] = {"seq_len": "[4, inf)", "vocab_size": "[3, inf)", "num_triggers": "[1, inf)",
                                        "train_examples": "[1, inf)", "test_examples": "[1, inf)",
                                        "extrapolate": "[1, inf)"}

    @property
    def slice_name(self) -> str:
        return f"len{self.seq_len}"


def generate(cfg: InductionHeadsConfig, rng: np.random.Generator, rows: int) -> np.ndarray:
    """``rows`` whole sequences ``[rows, seq_len + 1]``: ordinary tokens with triggers, the prefix, the answer."""
    n = cfg.seq_len - 1
    seq = rng.integers(FIRST_ORDINARY, cfg.vocab_size, size=(rows, n))          # (rows, n)
    one = rng.uniform(size=rows) < 0.5                                            # (rows,): a single trigger
    draws = rng.integers(n - 2, size=(rows, cfg.num_triggers))                   # (rows, K)
    draws[one, 1:] = draws[one, :1]                                               # copies of one draw: filtered out
    draws.sort(axis=1)
    keep = np.zeros(draws.shape, dtype=bool)
    keep[:, 0] = True
    last = draws[:, 0]
    for k in range(1, cfg.num_triggers):                                          # Safari's greedy filter
        keep[:, k] = draws[:, k] - last > 1
        last = np.where(keep[:, k], draws[:, k], last)
    row = np.arange(rows)
    answer = seq[row, draws[:, 0] + 1]                                            # (rows,)
    for k in range(cfg.num_triggers):
        r, p = row[keep[:, k]], draws[keep[:, k], k]
        seq[r, p], seq[r, p + 1] = COPY_PREFIX, answer[r]
    return np.concatenate([seq, np.full((rows, 1), COPY_PREFIX), answer[:, None]], axis=1)   # (rows, n + 2)


def induction_heads(cfg: InductionHeadsConfig, seed: int, split: str = "train", seq_len: int | None = None
                    ) -> TaskData:
    """One split of induction heads, at ``seq_len`` if given (length-generalisation sets) else ``cfg.seq_len``.
    inputs, labels ``[N, T]`` (labels are the inputs shifted by one; -100 where not scored); N is
    ``train_examples`` for train, ``test_examples`` for valid and test. Deterministic in ``(cfg, seed, split,
    seq_len)``."""
    cfg, examples = draw_split(cfg, "induction_heads", generate, seed, split, seq_len, extra=1)
    labels = examples[:, 1:].copy()
    if split != "train" or cfg.score == "final":
        labels[:, :-1] = -100
    inputs = torch.from_numpy(examples[:, :-1].copy())
    return TaskData(inputs, torch.from_numpy(labels), [cfg.slice_name] * len(inputs))
