"""A non-finite loss or gradient is never applied nor checkpointed; a diverged run is a result, in a sweep too."""
import csv
import dataclasses
import json

import pytest
import torch

import gatelab.train.loop as loop
from gatelab.cli import main
from gatelab.models import DecoderLM
from gatelab.train import train
from gatelab.train.checkpoint import CHECKPOINT, read_safetensors
from gatelab.train.diagnostics import TrainingDiverged
from gatelab.train.sweep import SweepRun, run_sweep
from gatelab.train.tasks import base as task_base

from .test_resume import config


def exploding(**changes):
    """Huge steps without clipping or warm-up: after the first update the loss is finite, its gradients are not."""
    cfg = dataclasses.replace(config(), **{"max_steps": 6, "eval_every": 3, "checkpoint_every": 1, **changes})
    cfg.optim = dataclasses.replace(cfg.optim, lr=1e30, grad_clip=0.0, warmup_frac=0.0)
    return cfg


def checkpointed_weights(run):
    tensors, meta = read_safetensors(run / CHECKPOINT)
    return json.loads(meta["progress"])["step"], {k: v for k, v in tensors.items() if k.startswith("model.")}


def test_non_finite_gradients_are_never_applied_nor_checkpointed(tmp_path):
    with pytest.raises(TrainingDiverged, match=r"non-finite gradient \(norm nan\) at step 2, first in embed.weight "
                                               r"\(layer embed, Embedding\); the update was not applied"):
        train(exploding(), tmp_path / "run", progress=False)
    step, weights = checkpointed_weights(tmp_path / "run")
    assert step == 1 and all(torch.isfinite(w).all() for w in weights.values())
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["diverged"] and result["diverged_at"] == 2 and result["steps"] == 1
    assert "non-finite gradient" in result["reason"]


def test_one_non_finite_gradient_is_caught_before_clipping_spreads_it(tmp_path, monkeypatch):
    """With clipping on, one NaN gradient would scale every gradient to NaN; the check names the one it came from."""
    class NaNGradientAtStep3(DecoderLM):
        def __init__(self, config):
            super().__init__(config)
            calls = iter(range(100))
            self.blocks[1].mixer.v_proj.weight.register_hook(
                lambda g: g * float("nan") if next(calls) == 2 else g)

    monkeypatch.setattr(task_base, "DecoderLM", NaNGradientAtStep3)
    with pytest.raises(TrainingDiverged, match=r"at step 3, first in blocks.1.mixer.v_proj.weight \(layer "
                                               r"blocks.1.mixer.v_proj, Linear\)"):
        train(dataclasses.replace(config(), checkpoint_every=1), tmp_path / "run", progress=False)
    step, weights = checkpointed_weights(tmp_path / "run")
    assert step == 2 and all(torch.isfinite(w).all() for w in weights.values())


def test_the_command_line_reports_a_divergence_as_an_error(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--out", str(out), "--no-progress", "--set", "model.d_model=16", "--set", "max_steps=5",
                 "--set", "eval_every=5", "--set", "mqar.train_examples=64", "--set", "mqar.test_examples=16",
                 "--set", "mqar.vocab_size=128", "--set", "optim.lr=1e30", "--set", "optim.grad_clip=0",
                 "--set", "optim.warmup_frac=0"])
    assert code == 2
    assert "error: non-finite" in capsys.readouterr().out


def test_a_diverged_run_is_a_result_the_sweep_goes_on_and_a_rerun_reads_it_back(tmp_path, monkeypatch):
    calm = dataclasses.replace(config(), max_steps=6, eval_every=3)
    runs = [SweepRun("wild", {"mixer": "gla,attn", "seed": 0, "lr": 1e30}, exploding(checkpoint_every=0)),
            SweepRun("calm", {"mixer": "gla,attn", "seed": 0, "lr": 1e-3}, calm)]
    records = run_sweep(runs, tmp_path, progress=False)
    assert [(r["run"], r["diverged"], r["diverged_at"], r["accuracy"] if r["diverged"] else r["steps"])
            for r in records] == [("wild", True, 2, 0.0), ("calm", False, None, 6)]
    monkeypatch.setattr(loop, "lr_at", lambda *a: pytest.fail("a finished or diverged run was trained again"))
    assert run_sweep(runs, tmp_path, progress=False) == records


def test_compare_marks_a_diverged_learning_rate_and_picks_the_other(tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", "--quick", "--mixers", "attn", "--seq-lens", "16", "--steps", "6", "--lrs", "1e30,3e-3",
                 "--set", "optim.warmup_frac=0", "--out", str(out), "--no-progress"]) == 0
    with open(out / "results.csv") as f:
        assert [(r["lr"], r["diverged"]) for r in csv.DictReader(f)] == [("1e+30", "True"), ("0.003", "False")]
    with open(out / "summary.csv") as f:
        (row,) = csv.DictReader(f)
    assert row["best_lrs"] == "0.003" and row["diverged"] == "0"
    assert "**Diverged:** 1 of 2 runs" in (out / "report.md").read_text()
