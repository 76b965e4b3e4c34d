"""Every task trains end to end through ``gatelab compare`` (its quick grid: a few steps of tiny models) and
reports its own metrics; the task registry and the per-task choices of the command line."""
import json
import os
from pathlib import Path

import pytest

from gatelab.cli import main
from gatelab.presets import TASK_PRESETS, preset
from gatelab.tasks.lra.image import write_standin
from gatelab.train.config import TrainConfig
from gatelab.train.tasks import TASKS, task_class

ETT = next((Path(d) for d in (os.environ.get("GATELAB_ETT_DIR"), Path(__file__).parents[2] / ".." / "shared" /
                              "data" / "ett") if d and (Path(d) / "ETTh1.csv").is_file()), None)
NEW_TASKS = [t for t in TASKS if t not in ("mqar", "lm")]


def test_every_task_has_a_quick_and_a_full_grid_and_reports_its_own_metric():
    for key, cls in TASKS.items():
        assert cls.key == key and cls.description and (cls.paper or key == "lm")
        assert cls.reference or key in ("mqar", "lm")   # the new tasks' reports quote their papers
        full, quick = TASK_PRESETS[key]
        assert preset(full).task == preset(quick).task == key
        assert preset(quick).base.max_steps < preset(full).base.max_steps


@pytest.mark.parametrize("task", NEW_TASKS)
def test_each_task_trains_through_compare(task, tmp_path, capsys):
    argv = ["compare", "--task", task, "--quick", "--no-progress", "--out", str(tmp_path / "out")]
    if task == "lra-image":
        argv += ["--data", str(write_standin(tmp_path / "fmnist", train=40, test=20))]
        argv += ["--set", "lra_image.valid_examples=8"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    metric = {"forecast": "test MSE", "selective-copying": "accuracy", "induction-heads": "accuracy"}.get(task,
                                                                                                   "test acc")
    assert metric in printed
    rows = (tmp_path / "out" / "summary.csv").read_text().splitlines()
    assert len(rows) == 1 + len(preset(TASK_PRESETS[task][1]).mixers)
    report = (tmp_path / "out" / "report.md").read_text()
    assert task in report and "## Settings" in report and "another scale" in report
    run = next((tmp_path / "out" / "runs").iterdir())
    language_model = task in ("selective-copying", "induction-heads")      # a DecoderLM: a Hugging Face folder
    assert (run / ("model" if language_model else "model.safetensors")).exists()
    result = json.loads((run / "result.json").read_text())
    assert task_class(task).metric in result["best"]


@pytest.mark.skipif(ETT is None, reason="ETTh1.csv not found ($GATELAB_ETT_DIR or ../shared/data/ett)")
@pytest.mark.parametrize("extra", [[], ["--set", "forecaster.architecture=gateformer"]])
def test_forecast_on_etth1_through_compare(tmp_path, extra, monkeypatch):
    monkeypatch.setenv("GATELAB_ETT_DIR", str(ETT))
    argv = ["compare", "--task", "forecast", "--quick", "--no-progress", "--data", "etth1", "--set",
            "forecast.features=M", "--out", str(tmp_path / "out"), *extra]
    assert main(argv) == 0
    summary = (tmp_path / "out" / "summary.csv").read_text()
    assert "test_mse_mean" in summary


def test_train_a_bidirectional_classifier_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--task", "lra-listops", "--mixer", "gla", "--out", str(out), "--no-progress",
            "--set", "model.bidirectional=true", "--set", "max_steps=2", "--set", "batch_size=4",
            "--set", "model.d_model=16", "--set", "listops.min_len=20", "--set", "listops.max_len=40",
            "--set", "listops.train_examples=16", "--set", "listops.valid_examples=8",
            "--set", "listops.test_examples=8"]
    assert main(argv) == 0
    assert "test/accuracy" in capsys.readouterr().out
    cfg = TrainConfig.stored(out / "config.json")
    assert cfg["model"]["bidirectional"] and cfg["model"]["vocab_size"] == 16


def test_the_tasks_command_lists_every_task(capsys):
    assert main(["tasks"]) == 0
    printed = capsys.readouterr().out
    assert all(key in printed for key in TASKS)
