"""Progress: plain lines when the output is not a terminal (start, steps with loss and ETA, end), bars in one."""
import dataclasses
import io
import re

from rich.console import Console

from gatelab.cli import main
from gatelab.train import train
from gatelab.train.progress import BarProgress, LineProgress, clock, reporting

from .test_resume import config


def short():
    return dataclasses.replace(config(), max_steps=4, eval_every=2, checkpoint_every=0)


def test_progress_lines_give_step_loss_last_evaluation_elapsed_and_eta(tmp_path):
    out = io.StringIO()
    result = train(short(), tmp_path / "run", progress=LineProgress(every=0.0, out=out))
    lines = out.getvalue().splitlines()
    assert lines[0] == "run: started, step 0/4"
    assert re.fullmatch(r"run: step 1/4, loss \d+\.\d+, \d:\d\d:\d\d elapsed, ETA \d:\d\d:\d\d", lines[1])
    assert re.fullmatch(r"run: step 2/4, loss \S+, accuracy \S+, \d:\d\d:\d\d elapsed, ETA \d:\d\d:\d\d", lines[2])
    assert lines[-1] == f"run: finished after 4 steps in {clock(result['train_seconds'])} " \
                        f"(accuracy {result['final']['accuracy']:.4g})"
    assert len(lines) == 6


def test_piped_output_gets_lines_and_no_progress_silences_them(tmp_path, capsys):
    common = ["train", "--set", "model.d_model=16", "--set", "max_steps=3", "--set", "eval_every=3",
              "--set", "mqar.train_examples=64", "--set", "mqar.test_examples=16", "--set", "mqar.vocab_size=128"]
    assert main([*common, "--out", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert "a: started, step 0/3" in out and "a: finished after 3 steps" in out
    assert main([*common, "--out", str(tmp_path / "b"), "--no-progress"]) == 0
    assert "b: " not in capsys.readouterr().out


def test_piped_output_is_not_given_bars():
    with reporting(True) as reporter:           # (pytest captures stdout: not a terminal)
        assert isinstance(reporter, LineProgress)


def test_bars_show_each_run_and_print_its_end_above_them():
    screen = io.StringIO()
    with BarProgress(runs=2, done=1, console=Console(file=screen, force_terminal=True, width=150)) as bars:
        bars.started("r1", 0, 10)
        bars.stepped("r1", 5, 10, 1.25, {"accuracy": 0.5})
        assert bars.bar.tasks[1].completed == 5 and bars.bar.tasks[1].fields["info"] == "loss 1.250, accuracy 0.5"
        bars.ended("r1", {"steps": 10, "train_seconds": 61.0, "final": {"accuracy": 0.75}})
        assert bars.bar.tasks[0].completed == 2 and len(bars.bar.tasks) == 1
    assert "r1: finished after 10 steps in 0:01:01 (accuracy 0.75)" in screen.getvalue()
