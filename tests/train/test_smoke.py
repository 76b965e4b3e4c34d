import itertools
import json

import torch

from gatelab.models import ModelConfig
from gatelab.train import MQARTaskConfig, OptimConfig, TrainConfig, lr_at, train
from gatelab.train.optim import build_optimizer
from gatelab.train.tasks import base as task_base


def tiny_config(**kw) -> TrainConfig:
    return TrainConfig(
        mqar=MQARTaskConfig(vocab_size=64, seq_lens=[32], num_kv_pairs=[2], train_examples=2000, test_examples=200),
        model=ModelConfig(d_model=32, n_layers=2, n_heads=1, channel="none", mixer="attn"),
        optim=OptimConfig(lr=1e-2), batch_size=32, max_steps=150, eval_every=50, **kw,
    )


def test_loss_falls_and_accuracy_beats_chance(tmp_path):
    result = train(tiny_config(), tmp_path / "run", progress=False)
    losses = [json.loads(line)["loss"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert sum(losses[-10:]) / 10 < 0.8 * sum(losses[:10]) / 10
    chance = 1 / 32  # values are drawn from half of the 64-token vocabulary
    assert result["final"]["accuracy"] > 5 * chance
    for name in ("config.json", "meta.json", "metrics.jsonl", "model/model.safetensors", "model/config.json",
                 "result.json"):
        assert (tmp_path / "run" / name).exists(), name
    meta = json.loads((tmp_path / "run" / "meta.json").read_text())
    assert {"git_commit", "torch", "device"} <= set(meta)


def test_training_is_deterministic_given_a_seed():
    cfg = tiny_config()
    cfg.max_steps, cfg.eval_every = 20, 20
    a, b = train(cfg, progress=False), train(cfg, progress=False)
    assert a["final"] == b["final"]


def test_early_stop_at_target_accuracy():
    result = train(tiny_config(target_accuracy=0.0), progress=False)
    assert result["steps"] == 50


def test_no_weight_decay_on_norms_biases_and_gate_biases():
    from gatelab.models import DecoderLM

    model = DecoderLM(ModelConfig(d_model=16, n_heads=2, mixer="gated_attn",
                                  mixer_options={"gated_attn": {"gate_init_prob": 0.3}}, channel="mlp"))
    opt = build_optimizer(model, OptimConfig(weight_decay=0.1))
    decayed = {id(p) for p in opt.param_groups[0]["params"]}
    for name, p in model.named_parameters():
        plain = "norm" in name or name.endswith("bias")
        assert (id(p) not in decayed) == plain, name


def test_warmup_then_cosine():
    cfg = OptimConfig(lr=1.0, warmup_frac=0.1, min_lr_ratio=0.1)
    lrs = [lr_at(s, 100, cfg) for s in range(100)]
    assert lrs[0] == 0.1 and lrs[9] == 1.0 and abs(lrs[-1] - 0.1) < 1e-3
    assert all(a >= b for a, b in itertools.pairwise(lrs[10:]))
    assert torch.tensor(lrs).max() == 1.0


def test_a_nonfinite_loss_names_the_first_bad_layer_and_saves_the_batch(tmp_path, monkeypatch):
    import pytest
    from safetensors.torch import load_file

    from gatelab.models import DecoderLM
    from gatelab.train.diagnostics import TrainingDiverged, first_nonfinite_module

    model = DecoderLM(ModelConfig(d_model=16, n_heads=2, mixer="gla,attn", channel="mlp"))
    with torch.no_grad():
        model.blocks[1].channel.w1.weight[0, 0] = float("nan")
    assert first_nonfinite_module(model, torch.randint(0, 64, (2, 8))) == "blocks.1.channel.w1"

    class Poisoned(DecoderLM):
        def __init__(self, config):
            super().__init__(config)
            with torch.no_grad():
                self.blocks[1].mixer.o_proj.weight[0, 0] = float("nan")

    monkeypatch.setattr(task_base, "DecoderLM", Poisoned)
    cfg = tiny_config()
    cfg.max_steps, cfg.eval_every = 5, 5
    message = r"non-finite training loss \(nan\) at step 1: first non-finite output in blocks.1.mixer.o_proj"
    with pytest.raises(TrainingDiverged, match=message):
        train(cfg, tmp_path / "run", progress=False)
    batch = load_file(tmp_path / "run" / "nonfinite_batch.safetensors")        # no pickle: safetensors
    assert batch["inputs"].shape == (32, 32) and batch["labels"].shape == (32, 32)
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["diverged"] and result["diverged_at"] == 1 and result["steps"] == 0
