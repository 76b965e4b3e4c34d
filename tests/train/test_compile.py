"""``compile=true``: training and evaluation through torch.compile agree with eager, and what a run saves is the
same module (no ``_orig_mod.`` prefix in its keys)."""
import json

import pytest
from safetensors import safe_open
from torch._dynamo.utils import counters

from gatelab.config import ConfigError, apply_overrides
from gatelab.models import ModelConfig
from gatelab.train import MQARTaskConfig, OptimConfig, TrainConfig, train
from gatelab.train.checkpoint import CHECKPOINT


def tiny(mixer: str, compile: bool) -> TrainConfig:
    """20 steps of a one-layer model; the test set is one evaluation batch (2 x batch_size), so evaluation
    compiles one shape."""
    return TrainConfig(
        mqar=MQARTaskConfig(vocab_size=64, seq_lens=[32], num_kv_pairs=[2], train_examples=640, test_examples=32),
        model=ModelConfig(d_model=32, n_layers=1, n_heads=2, mixer=mixer, short_conv=3),
        optim=OptimConfig(lr=1e-2), batch_size=16, max_steps=20, eval_every=10, checkpoint_every=20,
        compile=compile)


def run(tmp_path, mixer: str, compile: bool) -> tuple[list[float], dict, set[str]]:
    folder = tmp_path / f"{mixer}-{compile}"
    result = train(tiny(mixer, compile), folder, progress=False)
    losses = [json.loads(line)["loss"] for line in (folder / "metrics.jsonl").read_text().splitlines()]
    with safe_open(str(folder / "model" / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
    assert (folder / CHECKPOINT).exists()
    return losses, result["final"], keys


def check_agree(tmp_path, mixer: str) -> None:
    eager = run(tmp_path, mixer, compile=False)
    graphs = counters["stats"]["unique_graphs"]
    compiled = run(tmp_path, mixer, compile=True)
    assert counters["stats"]["unique_graphs"] > graphs, "compile=true compiled nothing"
    assert len(compiled[0]) == len(eager[0]) == 20
    assert compiled[0] == pytest.approx(eager[0], rel=1e-4, abs=1e-5)
    assert compiled[1] == pytest.approx(eager[1], rel=1e-3, abs=1e-3)
    assert compiled[2] == eager[2] and not any("_orig_mod" in k for k in compiled[2])


def test_compiled_training_matches_eager(tmp_path):
    check_agree(tmp_path, "attn")


@pytest.mark.slow
@pytest.mark.parametrize("mixer", ["gated_attn", "gla", "gdn", "mamba2"])
def test_compiled_training_matches_eager_for_recurrent_mixers(tmp_path, mixer):
    check_agree(tmp_path, mixer)


def test_compile_is_a_config_switch():
    assert apply_overrides(TrainConfig(), ["compile=true"]).compile is True
    assert TrainConfig().compile is False
    with pytest.raises(ConfigError, match="compile"):
        apply_overrides(TrainConfig(), ["compile=3"])


def test_each_compiled_run_compiles_afresh(tmp_path, monkeypatch):
    """A sweep trains its runs one after another in one process: a compiled run resets dynamo first, so the code
    of earlier runs does not count against its recompile limit (past which dynamo runs eagerly without a word)."""
    import torch

    resets = []
    monkeypatch.setattr(torch._dynamo, "reset", lambda: resets.append(True))
    monkeypatch.setattr(torch, "compile", lambda module, **options: module)
    train(tiny("attn", compile=True), tmp_path / "compiled", progress=False)
    train(tiny("attn", compile=False), tmp_path / "eager", progress=False)
    assert resets == [True]
