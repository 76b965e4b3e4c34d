import random
import statistics

import numpy as np
import pytest
import torch

from gatelab.config import ConfigError
from gatelab.tasks.lra import ListOpsConfig, listops
from gatelab.tasks.lra.listops import decode

# Token ids as documented: PAD 0, digits 0-9 -> 1-10, MIN MAX MED SM -> 11-14, "]" -> 15.
MIN, MAX, MED, SM, END = 11, 12, 13, 14, 15
APPLY = {MIN: min, MAX: max, MED: lambda a: int(statistics.median(a)), SM: lambda a: sum(a) % 10}

SMALL = ListOpsConfig(min_len=10, max_len=60, max_depth=6, max_args=5, train_examples=400, valid_examples=100,
                      test_examples=100)


def evaluate(tokens: list[int], max_args: int, max_depth: int) -> int:
    """Parse a token row with a stack of open operators and return its value; assert it is one well-formed tree."""
    stack, result = [], None
    for t in tokens:
        assert result is None, "tokens after the end of the tree"
        if 1 <= t <= 10:
            value = t - 1
        elif t in APPLY:
            stack.append((t, []))
            assert len(stack) < max_depth, "an operator at max_depth"
            continue
        else:
            assert t == END and stack, f"unexpected token {t}"
            op, args = stack.pop()
            assert 2 <= len(args) <= max_args
            value = APPLY[op](args)
        if stack:
            stack[-1][1].append(value)
        else:
            result = value
    assert result is not None and not stack
    return result


def unpadded(row: torch.Tensor) -> list[int]:
    n = int((row != 0).sum())
    assert (row[n:] == 0).all(), "padding inside a sequence"
    return row[:n].tolist()


def test_evaluator_semantics_and_decode():
    # [MAX 2 9 [MIN 4 7 ] 0 ] = 9; MED of 3 4 truncates to 3 as int(np.median); SM is the sum mod 10
    row = [MAX, 3, 10, MIN, 5, 8, END, 1, END]
    assert decode(torch.tensor(row + [0, 0])) == "[MAX 2 9 [MIN 4 7 ] 0 ]"
    assert evaluate(row, 10, 10) == 9
    assert evaluate([MED, 4, 5, END], 10, 10) == 3 == int(np.median([3, 4]))
    assert evaluate([MED, 10, 1, 8, 2, END], 10, 10) == 4
    assert evaluate([SM, 9, 7, END], 10, 10) == 4
    with pytest.raises(AssertionError):
        evaluate([MAX, 3, END], 10, 10)


def test_labels_equal_an_independent_evaluation_and_lengths_lie_in_the_band():
    for split in ("train", "valid", "test"):
        data = listops(SMALL, 0, split)
        assert data.inputs.shape == (SMALL.examples(split), SMALL.seq_len) and data.inputs.dtype == torch.int64
        assert int(data.inputs.max()) < SMALL.vocab_size
        for row, label in zip(data.inputs, data.labels, strict=True):
            tokens = unpadded(row)
            assert SMALL.min_len < len(tokens) < SMALL.max_len
            assert evaluate(tokens, SMALL.max_args, SMALL.max_depth) == int(label)


def test_deterministic_per_seed_and_splits_disjoint():
    a, b, c = listops(SMALL, 5), listops(SMALL, 5), listops(SMALL, 6)
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.inputs, c.inputs)
    seen = {}
    for split in ("train", "valid", "test"):
        rows = {tuple(r.tolist()) for r in listops(SMALL, 5, split).inputs}
        assert len(rows) == SMALL.examples(split), f"duplicate expression within {split}"
        for other, other_rows in seen.items():
            assert not rows & other_rows, f"an expression in both {split} and {other}"
        seen[split] = rows


def test_every_class_occurs_and_balanced_option_equalises():
    cfg = ListOpsConfig(min_len=20, max_len=80, train_examples=2000, valid_examples=10, test_examples=10)
    counts = torch.bincount(listops(cfg, 1).labels, minlength=10)
    assert (counts > 0).all(), counts
    balanced = ListOpsConfig(min_len=20, max_len=80, train_examples=1003, valid_examples=10, test_examples=10,
                             balanced=True)
    counts = torch.bincount(listops(balanced, 1).labels, minlength=10)
    assert counts.tolist() == [101, 101, 101, 100, 100, 100, 100, 100, 100, 100]


def reference_tree(rnd: random.Random, depth: int, cfg: ListOpsConfig) -> list[int]:
    """LRA's recursion, drawn node by node: a digit with probability 0.75 below max_depth."""
    if depth < cfg.max_depth and rnd.random() <= 0.25:
        children = [reference_tree(rnd, depth + 1, cfg) for _ in range(rnd.randint(2, cfg.max_args))]
        return [rnd.choice([MIN, MAX, MED, SM])] + [t for c in children for t in c] + [END]
    return [1 + rnd.randrange(10)]


def test_accepted_trees_follow_the_distribution_of_the_recursive_sampler():
    cfg = ListOpsConfig(min_len=8, max_len=40, max_depth=6, max_args=4, train_examples=3000, valid_examples=10,
                        test_examples=10)
    rnd, ref = random.Random(0), []
    while len(ref) < cfg.train_examples:
        tree = reference_tree(rnd, 1, cfg)
        if cfg.min_len < len(tree) < cfg.max_len:
            ref.append(tree)
    ours = [unpadded(r) for r in listops(cfg, 0).inputs]

    def stats(trees):
        lengths = np.array([len(t) for t in trees], float)
        labels = np.bincount([evaluate(t, cfg.max_args, cfg.max_depth) for t in trees], minlength=10)
        return lengths, labels / len(trees), np.mean([t[0] == MED for t in trees])

    (len_a, lab_a, med_a), (len_b, lab_b, med_b) = stats(ref), stats(ours)
    se = np.sqrt(len_a.var() / len(len_a) + len_b.var() / len(len_b))
    assert abs(len_a.mean() - len_b.mean()) < 4 * se
    assert 0.5 * np.abs(lab_a - lab_b).sum() < 0.05
    assert abs(med_a - med_b) < 0.05


@pytest.mark.parametrize("kw,field", [
    (dict(min_len=200, max_len=200), "listops.max_len"),
    (dict(min_len=50, max_len=51), "listops.max_len"),
    (dict(max_args=1), "listops.max_args"),
    (dict(max_depth=0), "listops.max_depth"),
    (dict(max_depth=2, max_args=3, min_len=5), "listops.min_len"),
    (dict(train_examples=0), "listops.train_examples"),
    (dict(min_len=-1), "listops.min_len"),
])
def test_bad_settings_name_the_field(kw, field):
    with pytest.raises(ConfigError, match=field):
        listops(ListOpsConfig(**kw), 0)


def test_unknown_split_and_an_exhausted_band_are_errors():
    with pytest.raises(ConfigError, match="split"):
        listops(SMALL, 0, "dev")
    tiny = ListOpsConfig(min_len=3, max_len=5, max_depth=2, max_args=2, train_examples=500, test_examples=10,
                         valid_examples=10)                      # only 4 ops x 100 digit pairs = 400 trees exist
    with pytest.raises(ConfigError, match="distinct"):
        listops(tiny, 0)
