import numpy as np
import pytest
import torch

from gatelab.config import ConfigError
from gatelab.tasks import MQARConfig, assemble, mqar


def test_documented_example():
    inputs, labels = assemble(np.array([[2, 4]]), np.array([[8, 7]]), np.array([[4, 1]]), seq_len=16)
    assert inputs.tolist() == [[2, 8, 4, 7, 0, 0, 4, 0, 0, 0, 0, 0, 2, 0, 0, 0]]
    expected = [-100] * 16
    expected[6], expected[12] = 7, 8
    assert labels.tolist() == [expected]


def test_labels_are_the_values_of_the_queried_keys():
    cfg = MQARConfig(vocab_size=128, seq_len=64, num_kv_pairs=8, num_examples=50)
    data = mqar(cfg, seed=3)
    for x, y in zip(data.inputs, data.labels, strict=True):
        pairs = {int(x[i]): int(x[i + 1]) for i in range(0, 16, 2)}
        pos = (y != -100).nonzero().flatten()
        assert len(pos) == 8
        assert all(pairs[int(x[p])] == int(y[p]) for p in pos)
        assert ((x[:16:2] > 0) & (x[:16:2] < 64)).all() and (x[1:16:2] >= 64).all()


def test_deterministic_per_seed_and_disjoint_train_test():
    cfg = MQARConfig(vocab_size=256, seq_len=64, num_kv_pairs=4, num_examples=500)
    a, b, c = mqar(cfg, 0), mqar(cfg, 0), mqar(cfg, 1)
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.inputs, c.inputs)
    test = mqar(cfg, 0, "test")
    train_rows = {tuple(r.tolist()) for r in a.inputs}
    assert not any(tuple(r.tolist()) in train_rows for r in test.inputs)


def test_power_law_places_queries_early_and_filler_is_random():
    cfg = MQARConfig(vocab_size=256, seq_len=128, num_kv_pairs=4, num_examples=400, power_a=0.01)
    pos = (mqar(cfg, 0).labels != -100).nonzero()[:, 1].float()
    uniform = MQARConfig(vocab_size=256, seq_len=128, num_kv_pairs=4, num_examples=400, power_a=1.0)
    pos_u = (mqar(uniform, 0).labels != -100).nonzero()[:, 1].float()
    assert pos.mean() < pos_u.mean()
    plain = MQARConfig(vocab_size=256, seq_len=64, num_kv_pairs=4, num_examples=10, random_non_queries=False)
    assert (mqar(plain, 0).inputs == 0).any() and not (mqar(cfg, 0).inputs[:, 8:] == 0).all()


@pytest.mark.parametrize("kw,match", [
    (dict(seq_len=64, num_kv_pairs=17), "at most 16 pairs"),
    (dict(seq_len=63), "even"),
    (dict(seq_len=64, vocab_size=64), "must exceed seq_len"),
    (dict(power_a=0.0), "power_a"),
])
def test_invalid_settings_are_explained(kw, match):
    with pytest.raises(ConfigError, match=match):
        mqar(MQARConfig(**kw), 0)
