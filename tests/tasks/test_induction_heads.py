import pytest
import torch

from gatelab.config import ConfigError
from gatelab.tasks.synthetic import InductionHeadsConfig, induction_heads

PREFIX = 1


def rows(data) -> list[tuple[int, ...]]:
    return [tuple(r.tolist()) for r in data.inputs]


def answer_by_scanning(x: list[int]) -> int:
    """The token after the first copy prefix of the input."""
    return x[x.index(PREFIX) + 1]


@pytest.mark.parametrize("split", ["train", "test"])
def test_final_label_is_the_token_after_the_first_trigger(split):
    cfg = InductionHeadsConfig(seq_len=64, train_examples=1000, test_examples=1000)
    data = induction_heads(cfg, seed=0, split=split)
    assert data.inputs.shape == data.labels.shape == (1000, 64)
    for x, y in zip(data.inputs.tolist(), data.labels.tolist(), strict=True):
        assert x[-1] == PREFIX and x.index(PREFIX) < 62
        assert all(2 <= t < 16 for t in x if t != PREFIX)
        assert y[-1] == answer_by_scanning(x)
    answers = data.labels[:, -1].bincount(minlength=16)[2:]
    assert answers.min() > 0.4 * answers.float().mean()   # every ordinary token is an answer, none dominates


def test_training_scores_every_next_token_by_default_and_tests_only_the_last():
    cfg = InductionHeadsConfig(seq_len=32, train_examples=40, test_examples=40)
    train = induction_heads(cfg, 0, "train")
    assert torch.equal(train.labels[:, :-1], train.inputs[:, 1:])
    for split, c in (("test", cfg), ("valid", cfg), ("train", InductionHeadsConfig(seq_len=32, score="final"))):
        labels = induction_heads(c, 0, split).labels
        assert (labels[:, :-1] == -100).all() and (labels[:, -1] >= 2).all()


def test_several_triggers_all_copy_the_first_answer():
    cfg = InductionHeadsConfig(seq_len=64, num_triggers=4, train_examples=400)
    data = induction_heads(cfg, 0)
    counts = []
    for x, y in zip(data.inputs.tolist(), data.labels.tolist(), strict=True):
        triggers = [i for i, t in enumerate(x[:-1]) if t == PREFIX]
        counts.append(len(triggers))
        assert all(x[i + 1] == y[-1] for i in triggers)
    single = sum(c == 1 for c in counts) / len(counts)
    assert 0.4 < single < 0.65 and max(counts) == 4   # half forced to one trigger; the rest keep up to 4


def test_deterministic_per_seed():
    cfg = InductionHeadsConfig(seq_len=32, train_examples=50)
    a, b, c = induction_heads(cfg, 0), induction_heads(cfg, 0), induction_heads(cfg, 1)
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.inputs, c.inputs)


def test_splits_are_disjoint_and_distinct_even_in_a_tiny_space():
    cfg = InductionHeadsConfig(seq_len=6, vocab_size=5, train_examples=100, test_examples=30)
    splits = {s: rows(induction_heads(cfg, 0, s)) for s in ("train", "valid", "test")}
    assert all(len(set(r)) == len(r) for r in splits.values())
    assert not set(splits["train"]) & set(splits["test"])
    assert not set(splits["train"]) & set(splits["valid"]) and not set(splits["valid"]) & set(splits["test"])
    assert not set(splits["train"]) & set(rows(induction_heads(cfg, 1, "test")))


def test_length_override_for_generalisation_sets():
    cfg = InductionHeadsConfig(seq_len=32, test_examples=10)
    data = induction_heads(cfg, 0, "test", seq_len=256)
    assert data.inputs.shape == (10, 256) and data.slices == ["len256"] * 10
    assert all(y[-1] == answer_by_scanning(x) for x, y in zip(data.inputs.tolist(), data.labels.tolist(), strict=True))


@pytest.mark.parametrize("kw,length,match", [
    (dict(vocab_size=2), None, "induction_heads.vocab_size"),
    (dict(seq_len=3), None, "induction_heads.seq_len"),
    (dict(), 3, "induction_heads.seq_len"),
    (dict(num_triggers=0), None, "induction_heads.num_triggers"),
    (dict(seq_len=4, vocab_size=3, train_examples=10), None, "induction_heads.train_examples"),
])
def test_bad_settings_name_the_field(kw, length, match):
    with pytest.raises(ConfigError, match=match):
        induction_heads(InductionHeadsConfig(**kw), 0, seq_len=length)
