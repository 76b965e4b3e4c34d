import pytest
import torch

from gatelab.config import ConfigError
from gatelab.tasks.synthetic import SelectiveCopyingConfig, selective_copying


def rows(data) -> list[tuple[int, ...]]:
    return [tuple(r.tolist()) for r in data.inputs]


def test_labels_are_the_data_tokens_read_back_in_order():
    cfg = SelectiveCopyingConfig(seq_len=64, num_tokens=8, vocab_size=10, train_examples=200)
    data = selective_copying(cfg, seed=0)
    T, M, marker = 64, 8, 9
    assert data.inputs.shape == data.labels.shape == (200, T)
    for x, y in zip(data.inputs.tolist(), data.labels.tolist(), strict=True):
        read_back = [t for t in x[: T - M] if t != 0]
        assert len(read_back) == M and all(1 <= t <= 8 for t in read_back)
        assert x[T - M:] == [marker] * M
        assert y[: T - M] == [-100] * (T - M) and y[T - M:] == read_back
    positions = (data.inputs[:, : T - M] != 0).nonzero()[:, 1]
    assert positions.min() == 0 and positions.max() == T - M - 1   # scattered over the whole noise region
    assert set(data.labels[:, T - M:].flatten().tolist()) == set(range(1, 9))


def test_plain_copying_puts_the_data_first():
    cfg = SelectiveCopyingConfig(seq_len=20, num_tokens=4, vocab_size=6, variable=False, train_examples=30)
    data = selective_copying(cfg, seed=1)
    assert (data.inputs[:, :4] > 0).all() and (data.inputs[:, 4:16] == 0).all()
    assert torch.equal(data.labels[:, 16:], data.inputs[:, :4])


def test_deterministic_per_seed():
    cfg = SelectiveCopyingConfig(seq_len=32, num_tokens=4, train_examples=50)
    a, b, c = selective_copying(cfg, 0), selective_copying(cfg, 0), selective_copying(cfg, 1)
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.inputs, c.inputs)


def test_splits_are_disjoint_and_distinct_even_in_a_tiny_space():
    # 8 tokens with 2 data tokens from 2 values: C(6, 2) * 2^2 = 60 possible sequences in all
    cfg = SelectiveCopyingConfig(seq_len=8, num_tokens=2, vocab_size=4, train_examples=20, test_examples=8)
    splits = {s: rows(selective_copying(cfg, 0, s)) for s in ("train", "valid", "test")}
    assert all(len(set(r)) == len(r) for r in splits.values())
    assert not set(splits["train"]) & set(splits["test"])
    assert not set(splits["train"]) & set(splits["valid"]) and not set(splits["valid"]) & set(splits["test"])
    assert not set(splits["train"]) & set(rows(selective_copying(cfg, 1, "test")))   # other seeds too


def test_length_override_for_generalisation_sets():
    cfg = SelectiveCopyingConfig(seq_len=32, num_tokens=4, test_examples=10)
    data = selective_copying(cfg, 0, "test", seq_len=128)
    assert data.inputs.shape == (10, 128) and data.slices == ["len128"] * 10
    assert selective_copying(cfg, 0, "test").slices == ["len32"] * 10


@pytest.mark.parametrize("kw,length,match", [
    (dict(seq_len=31, num_tokens=16), None, "selective_copying.seq_len"),
    (dict(seq_len=64, num_tokens=16), 20, "selective_copying.seq_len"),
    (dict(vocab_size=2), None, "selective_copying.vocab_size"),
    (dict(num_tokens=0), None, "selective_copying.num_tokens"),
    (dict(seq_len=4, num_tokens=2, vocab_size=3, train_examples=50), None, "selective_copying.train_examples"),
])
def test_bad_settings_name_the_field(kw, length, match):
    with pytest.raises(ConfigError, match=match):
        selective_copying(SelectiveCopyingConfig(**kw), 0, seq_len=length)


def test_unknown_split():
    with pytest.raises(ConfigError, match="split"):
        selective_copying(SelectiveCopyingConfig(), 0, "dev")
