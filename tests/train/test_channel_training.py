"""Training with routed channel mixers: auxiliary losses added once and logged per name, routing statistics in the
log and the result, EvoMoE's spawned experts continuing expert 0's optimiser state."""
import json

import torch

from gatelab.train.config import TrainConfig
from gatelab.train.loop import copy_first_row_state, train


def tiny(channel: str, options: dict, steps: int = 6) -> TrainConfig:
    cfg = TrainConfig(max_steps=steps, eval_every=3, batch_size=8)
    cfg.mqar.vocab_size, cfg.mqar.seq_lens, cfg.mqar.train_examples, cfg.mqar.test_examples = 64, [16], 64, 16
    cfg.model.d_model, cfg.model.channel, cfg.model.channel_options = 16, channel, {channel: options}
    return cfg


def test_moe_aux_losses_and_routing_statistics_are_logged_and_kept(tmp_path):
    result = train(tiny("moe", {"n_experts": 4, "top_k": 2}), tmp_path / "run", progress=False)
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all({"aux/balance", "aux/z", "train/experts_per_token", "train/router_entropy"} <= set(r) for r in lines)
    assert all(r["aux/balance"] >= 0.01 * 0.99 for r in lines)        # E * sum f P >= 1 (times the coefficient)
    assert {"eval/experts_per_token", "eval/dropped_fraction"} <= set(lines[-1])
    stats = result["channel_stats"]
    assert set(stats) == {"layer0", "layer1"} and len(stats["layer0"]["load"]) == 4
    assert abs(sum(stats["layer0"]["load"]) - 1) < 1e-9 and stats["layer0"]["experts_per_token"] == 2.0
    assert result["active_params"] < result["num_params"]


def test_evomoe_spawns_during_training_and_logs_its_experts_per_token(tmp_path):
    train(tiny("evomoe", {"n_experts": 4, "diversify_steps": 2, "anneal_steps": 3}), tmp_path / "run", progress=False)
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    per_token = [r["train/experts_per_token"] for r in lines]
    assert per_token[:2] == [1.0, 1.0] and max(per_token[2:]) > 1.0      # one expert, then the dense gate
    assert "aux/balance" not in lines[0] and "aux/balance" in lines[2]


def test_spawned_rows_continue_row_zeros_optimiser_moments():
    w = torch.nn.Parameter(torch.randn(3, 4))
    opt = torch.optim.AdamW([w], lr=1e-2)
    for _ in range(3):
        w.grad = torch.zeros_like(w)
        w.grad[0] = torch.randn(4)
        opt.step()
    state = opt.state[w]
    assert state["exp_avg"][1:].abs().max() == 0
    copy_first_row_state(opt, [w])
    for key in ("exp_avg", "exp_avg_sq"):
        assert torch.equal(state[key][1], state[key][0]) and torch.equal(state[key][2], state[key][0])
    assert state["step"].numel() == 1                                     # scalars are left alone
