"""Checkpoints hold tensors and JSON only: nothing read from a run folder is unpickled, and a file that cannot be
read is an error naming it."""
import json
import os
import pickle

import pytest
import torch

from gatelab.config import ConfigError
from gatelab.models import DecoderLM, ModelConfig
from gatelab.train import train
from gatelab.train.checkpoint import CHECKPOINT, LEGACY_CHECKPOINT, load_checkpoint, save_checkpoint
from gatelab.train.optim import OptimConfig, build_optimizer

from .test_resume import config


class Payload:
    """Unpickling this touches ``marker``: the code a hostile checkpoint would run."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def trained_for_a_while(tmp_path):
    cfg = config()
    cfg.max_steps = 10
    train(cfg, tmp_path / "run", progress=False)
    return cfg, tmp_path / "run"


@pytest.mark.parametrize("name", [LEGACY_CHECKPOINT, CHECKPOINT])
def test_a_planted_pickle_never_runs_and_the_error_names_the_file(tmp_path, name):
    cfg, run = trained_for_a_while(tmp_path)
    (run / CHECKPOINT).unlink()
    marker = tmp_path / "pwned"
    (run / name).write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(ConfigError) as error:
        train(cfg, run, progress=False, resume=True)
    assert str(run / name) in str(error.value)
    assert not marker.exists()


def test_the_checkpoint_is_safetensors_whose_metadata_is_json(tmp_path):
    from safetensors import safe_open

    _, run = trained_for_a_while(tmp_path)
    with safe_open(str(run / CHECKPOINT), framework="pt") as f:
        meta, keys = f.metadata(), set(f.keys())
    assert json.loads(meta["progress"])["step"] == 10
    assert "model.embed.weight" in keys and "model.head.weight" not in keys      # tied: stored once
    assert json.loads(meta["aliases"]) == {"head.weight": "embed.weight"}
    assert {"rng.torch", "optimizer.0.exp_avg", "optimizer.0.step"} <= keys


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_a_damaged_checkpoint_is_an_error_naming_the_file(tmp_path, damage):
    cfg, run = trained_for_a_while(tmp_path)
    data = (run / CHECKPOINT).read_bytes()
    damaged = {"truncated": data[:len(data) // 2], "garbage": os.urandom(256), "empty": b""}[damage]
    (run / CHECKPOINT).write_bytes(damaged)
    with pytest.raises(ConfigError, match=f"{run / CHECKPOINT}.*truncated or corrupt"):
        train(cfg, run, progress=False, resume=True)


def test_a_checkpoint_of_another_model_is_an_error_naming_the_file(tmp_path):
    small = DecoderLM(ModelConfig(d_model=16, n_heads=2, vocab_size=32))
    save_checkpoint(tmp_path / CHECKPOINT, small, build_optimizer(small, OptimConfig()), {"step": 0})
    wide = DecoderLM(ModelConfig(d_model=32, n_heads=2, vocab_size=32))
    with pytest.raises(ConfigError, match=f"{tmp_path / CHECKPOINT} does not fit this model"):
        load_checkpoint(tmp_path / CHECKPOINT, wide, build_optimizer(wide, OptimConfig()))


def test_non_finite_weights_are_never_checkpointed(tmp_path):
    model = DecoderLM(ModelConfig(d_model=16, n_heads=2, vocab_size=32))
    with torch.no_grad():
        model.blocks[0].mixer.q_proj.weight[0, 0] = float("inf")
    with pytest.raises(ValueError, match="blocks.0.mixer.q_proj.weight holds non-finite values"):
        save_checkpoint(tmp_path / CHECKPOINT, model, build_optimizer(model, OptimConfig()), {"step": 0})
    assert not list(tmp_path.iterdir())


def test_optimiser_and_rng_state_come_back_exactly(tmp_path):
    torch.manual_seed(0)
    model = DecoderLM(ModelConfig(d_model=16, n_heads=2, vocab_size=32))
    opt = build_optimizer(model, OptimConfig())
    model(torch.randint(0, 32, (2, 8)), labels=torch.randint(0, 32, (2, 8))).loss.backward()
    opt.step()
    save_checkpoint(tmp_path / CHECKPOINT, model, opt, {"step": 1, "best": {"accuracy": 0.5}})
    expected_rng = torch.rand(3)

    other = DecoderLM(ModelConfig(d_model=16, n_heads=2, vocab_size=32))
    other_opt = build_optimizer(other, OptimConfig())
    assert load_checkpoint(tmp_path / CHECKPOINT, other, other_opt) == {"step": 1, "best": {"accuracy": 0.5}}
    assert torch.equal(torch.rand(3), expected_rng)
    for a, b in zip(model.state_dict().values(), other.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    saved, loaded = opt.state_dict(), other_opt.state_dict()
    assert saved["param_groups"] == loaded["param_groups"]
    for pid, state in saved["state"].items():
        assert state.keys() == loaded["state"][pid].keys()
        assert all(torch.equal(v, loaded["state"][pid][k]) for k, v in state.items())
