"""Data parallelism and gradient accumulation split one batch; the update must not depend on the split."""
import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from gatelab.config import ConfigError, to_dict
from gatelab.models import ModelConfig
from gatelab.train import LMTaskConfig, TrainConfig, train

from ..utils import write_corpus


def lm_config(folder, **kw) -> TrainConfig:
    cfg = TrainConfig(task="lm", lm=LMTaskConfig(data=str(folder), tokenizer="byte", seq_len=16, eval_tokens=256,
                                                 cache=False),
                      model=ModelConfig(d_model=16, n_layers=2, n_heads=2, mixer="gla,attn"),
                      batch_size=8, max_steps=6, eval_every=3, **kw)
    cfg.optim.lr = 1e-2
    return cfg


@pytest.fixture
def corpus(tmp_path):
    return write_corpus(tmp_path / "corpus", "the quick brown fox jumps over the lazy dog.\n" * 60)


def losses(run):
    return [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def weights(run):
    return load_file(run / "model" / "model.safetensors")


def test_gradient_accumulation_gives_the_same_training(corpus, tmp_path):
    train(lm_config(corpus), tmp_path / "one", progress=False)
    train(lm_config(corpus, grad_accum=4), tmp_path / "four", progress=False)
    assert losses(tmp_path / "four") == pytest.approx(losses(tmp_path / "one"), rel=1e-5)
    a, b = weights(tmp_path / "one"), weights(tmp_path / "four")
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-5)


def test_an_uneven_split_is_a_config_error(corpus):
    with pytest.raises(ConfigError, match="split evenly"):
        train(lm_config(corpus, grad_accum=3), progress=False)


def test_two_process_torchrun_equals_single_process_accumulation(corpus, tmp_path):
    """``torchrun --nproc_per_node 2`` (gloo on CPU, each process half of every batch) against one process with
    grad_accum=2 (the same two halves in turn): same losses and same final weights up to float tolerance."""
    train(lm_config(corpus, grad_accum=2), tmp_path / "single", progress=False)
    config = tmp_path / "ddp.json"
    config.write_text(json.dumps(to_dict(lm_config(corpus))))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                    "-m", "gatelab.cli", "train", "--task", "lm", "--config", str(config),
                    "--out", str(tmp_path / "ddp"), "--no-progress"], check=True, env=env, timeout=300)
    assert json.loads((tmp_path / "ddp" / "result.json").read_text())["processes"] == 2
    assert losses(tmp_path / "ddp") == pytest.approx(losses(tmp_path / "single"), rel=1e-5)
    a, b = weights(tmp_path / "single"), weights(tmp_path / "ddp")
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-5)


def test_precision_auto_is_float32_on_cpu_and_bf16_when_asked():
    from gatelab.train.loop import autocast_for

    layer = torch.nn.Linear(4, 4)
    with autocast_for("auto", "cpu"):
        assert layer(torch.randn(2, 4)).dtype == torch.float32
    with autocast_for("bf16", "cpu"):
        assert layer(torch.randn(2, 4)).dtype == torch.bfloat16


def test_torchrun_trains_channel_mixers_that_leave_parameters_unused(corpus, tmp_path):
    """EvoMoE's router waits for the spawn and a pre-gated block's own router and last pre-gate are never used:
    data-parallel training must look for unused parameters instead of stopping at the second step."""
    cfg = lm_config(corpus)
    cfg.model.mixer, cfg.model.n_layers = "attn", 3
    cfg.model.channel = "evomoe,pregated_moe,pregated_moe"
    cfg.model.channel_options = {"evomoe": {"n_experts": 4, "diversify_steps": 3}, "pregated_moe": {"n_experts": 4}}
    config = tmp_path / "ddp.json"
    config.write_text(json.dumps(to_dict(cfg)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                    "-m", "gatelab.cli", "train", "--task", "lm", "--config", str(config),
                    "--out", str(tmp_path / "ddp"), "--no-progress"], check=True, env=env, timeout=300)
    result = json.loads((tmp_path / "ddp" / "result.json").read_text())
    assert result["processes"] == 2 and result["steps"] == 6 and "channel_stats" in result
