import json

from gatelab.models import ModelConfig
from gatelab.train import TrainConfig
from gatelab.train.budget import seconds_per_step, steps_for_budget


def test_a_budget_is_measured_once_and_reused(tmp_path):
    cfg = TrainConfig(model=ModelConfig(d_model=16, n_layers=1, n_heads=2, channel="none"), batch_size=4)
    cfg = cfg.resolved(cfg.mqar.vocab_size)
    assert 0 < seconds_per_step(cfg, warmup=1, repeats=2) < 5
    record = tmp_path / "budget.json"
    assert steps_for_budget(cfg, 1.0, record) >= 1 and record.exists()
    known = json.loads(record.read_text())
    record.write_text(json.dumps({key: 0.5 for key in known}))   # a recorded measurement wins over a new one
    assert steps_for_budget(cfg, 10.0, record) == 20
    other = TrainConfig(model=ModelConfig(d_model=8, n_layers=1, n_heads=2, channel="none"), batch_size=4)
    steps_for_budget(other.resolved(other.mqar.vocab_size), 1.0, record)
    assert len(json.loads(record.read_text())) == 2
