"""ListOps from the Long Range Arena (Tay et al., ICLR 2021, "Long Range Arena: A Benchmark for Efficient
Transformers"), with the semantics of LRA's generator (``lra_benchmarks/data/listops.py``).

An example is a nested expression over the digits 0-9 and four operators; the label is its value (10 classes):

    [MAX 2 9 [MIN 4 7 ] 0 ]  ->  9        [MED 3 4 ]  ->  3 (int(np.median): 3.5 truncates)     [SM 8 5 ]  ->  3

Trees are drawn as LRA draws them: a node at depth < ``max_depth`` (the root has depth 1) is a digit with
probability 0.75, otherwise an operator (MIN, MAX, MED, SM, uniform) with ``randint(2, max_args)`` children (both
ends inclusive); nodes at ``max_depth`` are digits. A tree's length is its number of tokens once LRA's pipeline has
removed the parentheses (a digit 1, an operator 2: its name and its ``]``), and a tree is kept iff
``min_len < length < max_len`` (strict). Tokens: PAD 0, digits 1-10, MIN MAX MED SM 11-14, ``]`` 15 (LRA maps ``]``
to its own token ``X``). Every split is deduplicated and disjoint from the others: the test split is drawn first,
the valid split skips every test expression, the train split skips both (LRA deduplicates all three in one set).

Trees are sampled level by level for a batch of roots at once (numpy), and a tree is abandoned as soon as it
cannot end below ``max_len``: plain rejection sampling, so the accepted trees have LRA's distribution. The
labels are skewed (LRA does not balance ListOps); ``balanced=True`` subsamples to equal classes instead.

Splits: LRA has 96,000 train, 2,000 valid and 2,000 test trees of length 500-2,000; the defaults here are
20,000 / 2,000 / 2,000 trees of length 50-200, which a CPU trains on in minutes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from ...config import ConfigError, check_ranges
from ..classification import PAD, ClassificationData

OPS = ("[MIN", "[MAX", "[MED", "[SM")
DIGIT0, OP0, END = 1, 11, 15                      # token ids: digit d -> 1 + d, operator i -> 11 + i, "]" -> 15
SPLITS = ("test", "valid", "train")               # drawn in this order, each skipping the expressions before it
LEAF_P = 0.75                                     # LRA: a node below max_depth is a digit iff random() > 0.25
MAX_BATCH, MAX_DRAWS = 1 << 20, 50_000_000       # roots per batch; roots drawn for one split before giving up


@dataclass(kw_only=True)
class ListOpsConfig:
    """ListOps trees with ``min_len < length < max_len``. LRA: 500 and 2,000 (here 50 and 200 for CPU training),
    ``max_depth`` 10, ``max_args`` 10, 96k / 2k / 2k examples (here 20k / 2k / 2k). ``balanced`` (not in LRA)
    keeps an equal number of trees of every label."""

    min_len: int = 50
    max_len: int = 200
    max_depth: int = 10
    max_args: int = 10
    train_examples: int = 20_000
    valid_examples: int = 2_000
    test_examples: int = 2_000
    balanced: bool = False

    RANGES: ClassVar[dict[str, str]] = {"min_len": "[0, inf)", "max_len": "[2, inf)", "max_depth": "[1, inf)",
                                        "max_args": "[2, inf)", "train_examples": "[1, inf)",
                                        "valid_examples": "[1, inf)", "test_examples": "[1, inf)"}

    def check(self) -> None:
        if self.max_len - self.min_len < 2:
            raise ConfigError(f"listops.max_len ({self.max_len}) must exceed listops.min_len ({self.min_len}) by at "
                              f"least 2: lengths are kept iff min_len < length < max_len")
        longest = max_tree_length(self.max_depth, self.max_args)
        if longest <= self.min_len:
            raise ConfigError(f"listops.min_len ({self.min_len}) must be below {longest}, the longest tree that "
                              f"listops.max_depth={self.max_depth} and listops.max_args={self.max_args} allow")

    @property
    def vocab_size(self) -> int:
        """PAD, 10 digits, 4 operators and ``]``."""
        return END + 1

    @property
    def num_classes(self) -> int:
        return 10

    @property
    def seq_len(self) -> int:
        """The padded length of every example: the longest tree kept, ``max_len - 1``."""
        return self.max_len - 1

    def examples(self, split: str) -> int:
        if split not in SPLITS:
            raise ConfigError(f"listops: split must be one of {list(SPLITS)}; got {split!r}")
        return getattr(self, f"{split}_examples")


def max_tree_length(max_depth: int, max_args: int) -> int:
    """The length of the largest tree: every node above ``max_depth`` an operator with ``max_args`` children."""
    length = 1
    for _ in range(max_depth - 1):
        length = 2 + max_args * length
    return length


def sample_trees(rng: np.random.Generator, roots: int, cfg: ListOpsConfig) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``roots`` trees and return the kept ones: tokens ``[M, max_len - 1]`` (uint8, PAD-padded) and their
    values ``[M]``, in the order drawn.

    Level d holds the nodes at depth d + 1 of every live tree (their tree ids and one uniform each, which decides
    a node's kind and content); the children of a node are contiguous in the next level, in order. ``bound``
    counts a tree's tokens so far plus one per child not drawn yet, so a tree is dropped as soon as it cannot end
    below ``max_len``, and equals the tree's length once it is complete.
    """
    levels, tree = [], np.arange(roots)
    bound, dead = np.ones(roots, np.int64), np.zeros(roots, bool)
    for depth in range(1, cfg.max_depth + 1):
        u = rng.random(len(tree))
        levels.append((tree, u))
        ops = np.flatnonzero(u < _op_p(depth, cfg))
        nargs = _decode(u[ops], True, depth, cfg)[0]
        bound += np.bincount(tree[ops], weights=1 + nargs, minlength=roots).astype(np.int64)
        dead |= bound >= cfg.max_len
        grow = ~dead[tree[ops]]
        tree = np.repeat(tree[ops[grow]], nargs[grow])
        if not len(tree):
            break
    keep = ~dead & (bound > cfg.min_len)
    return _lay_out(levels, keep, cfg)


def _op_p(depth: int, cfg: ListOpsConfig) -> float:
    """The probability that a node at ``depth`` is an operator (LRA: 0.25 below max_depth, then 0)."""
    return 1 - LEAF_P if depth < cfg.max_depth else 0.0


def _decode(u: np.ndarray, is_op, depth: int, cfg: ListOpsConfig) -> tuple[np.ndarray, np.ndarray]:
    """Number of children and token of nodes drawn with uniforms ``u``: an operator (``u < op_p``) takes one of
    the ``4 * (max_args - 1)`` (operator, children) pairs from ``u / op_p``; a digit takes ``(u - op_p) / (1 -
    op_p)`` times 10, each uniform on [0, 1) given the node's kind."""
    op_p, choices = _op_p(depth, cfg), len(OPS) * (cfg.max_args - 1)
    pick = np.where(is_op, u / (op_p or 1.0) * choices, (u - op_p) / (1 - op_p) * 10).astype(np.int64)
    pick = np.minimum(pick, np.where(is_op, choices, 10) - 1)
    return np.where(is_op, 2 + pick // len(OPS), 0), np.where(is_op, OP0 + pick % len(OPS), DIGIT0 + pick)


def _lay_out(levels: list, keep: np.ndarray, cfg: ListOpsConfig) -> tuple[np.ndarray, np.ndarray]:
    """Token rows and values of the kept trees from the per-level arrays of ``sample_trees``: sizes and values
    reduce per block of children from the deepest level up, positions are laid out from the root down."""
    row = np.cumsum(keep) - 1                                 # kept tree -> output row
    kept = []
    for depth, (tree, u) in enumerate(levels, start=1):
        tree, u = tree[keep[tree]], u[keep[tree]]
        if len(tree):
            is_op = u < _op_p(depth, cfg)
            kept.append((tree, is_op, *_decode(u, is_op, depth, cfg)))
    tokens = np.zeros((int(keep.sum()), cfg.max_len - 1), np.uint8)
    if not kept:
        return tokens, np.zeros(0, np.int64)
    size, value = [None] * len(kept), [None] * len(kept)
    for d in range(len(kept) - 1, -1, -1):
        tree, is_op, nargs, kind = kept[d]
        size[d], value[d] = np.ones(len(tree), np.int64), kind - DIGIT0
        ops = np.flatnonzero(is_op)
        if len(ops):
            starts = np.concatenate([[0], np.cumsum(nargs[ops])[:-1]])
            size[d][ops] = 2 + np.add.reduceat(size[d + 1], starts)
            value[d][ops] = _evaluate(kind[ops] - OP0, value[d + 1], starts, nargs[ops])
    pos = np.zeros(len(kept[0][0]), np.int64)
    for d, (tree, is_op, nargs, kind) in enumerate(kept):
        r = row[tree]
        tokens[r, pos] = kind
        tokens[r[is_op], (pos + size[d] - 1)[is_op]] = END
        if d + 1 < len(kept):
            parent = np.repeat(np.flatnonzero(is_op), nargs[is_op])
            before = np.cumsum(size[d + 1]) - size[d + 1]     # sizes of all earlier nodes in the level
            first = np.repeat(before[np.concatenate([[0], np.cumsum(nargs[is_op])[:-1]])], nargs[is_op])
            pos = pos[parent] + 1 + before - first
    return tokens, value[0]


def _evaluate(op: np.ndarray, values: np.ndarray, starts: np.ndarray, nargs: np.ndarray) -> np.ndarray:
    """Values of operator nodes ``op`` ``[K]`` whose arguments are ``values[starts[k] : starts[k] + nargs[k]]``."""
    lo, hi, total = (np.minimum.reduceat(values, starts), np.maximum.reduceat(values, starts),
                     np.add.reduceat(values, starts))
    group = np.repeat(np.arange(len(op)), nargs)
    ordered = values[np.lexsort((values, group))]             # every block sorted
    median = (ordered[starts + (nargs - 1) // 2] + ordered[starts + nargs // 2]) // 2   # int(np.median), >= 0
    return np.choose(op, [lo, hi, median, total % 10])


def draw_split(cfg: ListOpsConfig, seed: int, split: str, exclude: set[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """``cfg.examples(split)`` distinct trees (tokens ``[N, max_len - 1]`` uint8, values ``[N]``) none of whose
    token rows is in ``exclude``; the rows taken are added to ``exclude``."""
    rng = np.random.default_rng([seed, SPLITS.index(split), 0x1157])
    need = cfg.examples(split)
    quota = np.full(10, need // 10) + (np.arange(10) < need % 10) if cfg.balanced else np.full(10, need)
    rows, values, drawn, batch = [], [], 0, 1 << 14
    while len(rows) < need:
        found = len(rows)
        tokens, vals = sample_trees(rng, batch, cfg)
        drawn += batch
        for row, v in zip(tokens, vals, strict=True):
            key = row.tobytes()
            if key not in exclude and quota[v] > 0:
                exclude.add(key)
                quota[v] -= 1
                rows.append(row)
                values.append(v)
                if len(rows) == need:
                    break
        if len(rows) < need and (drawn >= MAX_DRAWS or (batch == MAX_BATCH and len(rows) == found)):
            raise ConfigError(f"listops: only {len(rows)} of {need} distinct {split} trees in {drawn} draws; widen "
                              f"(listops.min_len, listops.max_len) or raise listops.max_depth / listops.max_args")
        rate = max(len(rows), 1) / drawn
        batch = int(min(MAX_BATCH, max(1 << 12, 1.5 * (need - len(rows)) / rate)))
    return np.stack(rows), np.asarray(values, np.int64)


def listops(cfg: ListOpsConfig, seed: int, split: str = "train") -> ClassificationData:
    """One ListOps split: inputs ``[N, max_len - 1]`` int64 (PAD 0), labels ``[N]`` in 0-9. Deterministic in
    ``(cfg, seed, split)``; no expression occurs in two splits."""
    check_ranges(cfg, "listops")
    cfg.examples(split)
    taken: set[bytes] = set()
    for s in SPLITS[: SPLITS.index(split) + 1]:
        tokens, values = draw_split(cfg, seed, s, taken)
    return ClassificationData(torch.from_numpy(tokens.astype(np.int64)), torch.from_numpy(values))


def decode(tokens) -> str:
    """The expression of one token row, e.g. ``[MAX 2 9 [MIN 4 7 ] 0 ]`` (PAD dropped)."""
    words = {DIGIT0 + d: str(d) for d in range(10)} | {OP0 + i: op for i, op in enumerate(OPS)} | {END: "]"}
    return " ".join(words[int(t)] for t in tokens if int(t) != PAD)
