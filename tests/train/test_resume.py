import json

import pytest

import gatelab.train.loop as loop
from gatelab.models import ModelConfig
from gatelab.train import MQARTaskConfig, TrainConfig, train


def config() -> TrainConfig:
    return TrainConfig(mqar=MQARTaskConfig(vocab_size=64, seq_lens=[32], num_kv_pairs=[2], train_examples=500,
                                           test_examples=64),
                       model=ModelConfig(d_model=16, n_layers=2, n_heads=2, mixer="gla,attn", channel="none"),
                       batch_size=16, max_steps=30, eval_every=10, checkpoint_every=10, target_accuracy=2.0)


def losses(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def kill_at_step_25(run_dir, monkeypatch):
    real_lr_at = loop.lr_at

    def killed(step, total, cfg):
        if step == 25:
            raise KeyboardInterrupt
        return real_lr_at(step, total, cfg)

    monkeypatch.setattr(loop, "lr_at", killed)
    with pytest.raises(KeyboardInterrupt):
        train(config(), run_dir, progress=False)
    monkeypatch.setattr(loop, "lr_at", real_lr_at)


def test_resume_after_a_kill_continues_exactly(tmp_path, monkeypatch):
    whole = train(config(), tmp_path / "whole", progress=False)
    kill_at_step_25(tmp_path / "killed", monkeypatch)
    assert len(losses(tmp_path / "killed")) == 25 and not (tmp_path / "killed" / "result.json").exists()

    resumed = train(config(), tmp_path / "killed", progress=False, resume=True)
    assert losses(tmp_path / "killed") == losses(tmp_path / "whole")
    assert resumed["final"] == whole["final"] and resumed["steps"] == whole["steps"]


def test_a_kill_during_a_checkpoint_write_keeps_the_previous_one(tmp_path, monkeypatch):
    import gatelab.train.checkpoint as ckpt

    kill_at_step_25(tmp_path / "run", monkeypatch)  # the last checkpoint is step 20's; the next write is at 30
    before = (tmp_path / "run" / "checkpoint.safetensors").read_bytes()

    def dies_mid_write(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt, "save_file", dies_mid_write)
    with pytest.raises(KeyboardInterrupt):
        train(config(), tmp_path / "run", progress=False, resume=True)
    assert (tmp_path / "run" / "checkpoint.safetensors").read_bytes() == before
    assert not list((tmp_path / "run").glob("*.tmp"))


def test_resume_refuses_another_configuration(tmp_path):
    train(config(), tmp_path / "run", progress=False)
    other = config()
    other.model.d_model = 32
    with pytest.raises(ValueError, match="another configuration"):
        train(other, tmp_path / "run", progress=False, resume=True)


def test_a_run_written_before_a_config_field_existed_still_matches(tmp_path):
    from gatelab.train.sweep import finished_result

    cfg = config()
    train(cfg, tmp_path / "run", progress=False)
    path = tmp_path / "run" / "config.json"
    stored = json.loads(path.read_text())
    del stored["keep_checkpoints"], stored["lm"]["bos"]          # as an older version wrote it
    path.write_text(json.dumps(stored))
    assert finished_result(tmp_path / "run", cfg) is not None
    cfg.keep_checkpoints = True                                    # a non-default value is a different config
    assert finished_result(tmp_path / "run", cfg) is None


def test_a_finished_run_matches_whatever_its_checkpoint_cadence(tmp_path):
    from gatelab.train.sweep import finished_result

    train(config(), tmp_path / "run", progress=False)
    cfg = config()
    cfg.checkpoint_every = 0                                       # how often it saved says nothing of the result
    assert finished_result(tmp_path / "run", cfg) is not None


def test_an_interrupted_sweep_resumes_its_run_from_the_checkpoint(tmp_path, monkeypatch):
    from gatelab.train.sweep import SweepRun, run_sweep

    runs = [SweepRun("r", {"mixer": "gla,attn"}, config())]
    whole = run_sweep(runs, tmp_path / "whole", progress=False)
    kill_at_step_25(tmp_path / "cut" / "runs" / "r", monkeypatch)   # killed after the checkpoint of step 20
    real_lr_at, steps = loop.lr_at, []

    def counting(step, total, cfg):
        steps.append(step)
        return real_lr_at(step, total, cfg)

    monkeypatch.setattr(loop, "lr_at", counting)
    resumed = run_sweep([SweepRun("r", {"mixer": "gla,attn"}, config())], tmp_path / "cut", progress=False)
    assert steps == list(range(20, 30))                             # steps 0-19 were not trained again
    assert losses(tmp_path / "cut" / "runs" / "r") == losses(tmp_path / "whole" / "runs" / "r")
    assert resumed[0]["accuracy"] == whole[0]["accuracy"]
