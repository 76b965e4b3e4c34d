"""A sweep trained by worker processes computes exactly what the same sweep computes in one process."""
import dataclasses
import io
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from gatelab.config import ConfigError
from gatelab.train import sweep
from gatelab.train.executors import LocalExecutor, RunsFailed
from gatelab.train.progress import LineProgress
from gatelab.train.sweep import SweepRun, run_sweep

from .test_resume import config, losses


def runs(mixers=("gla", "attn", "gla,attn")):
    """A run per mixer; a mixer that is not registered makes a run that fails as it starts training (set after the
    config is built, which would refuse it)."""
    out = []
    for i, m in enumerate(mixers):
        known = m if m in ("gla", "attn", "gla,attn") else "gla"
        cfg = dataclasses.replace(config(), model=dataclasses.replace(config().model, mixer=known), max_steps=12,
                                  checkpoint_every=0)
        cfg.model.mixer = m
        out.append(SweepRun(f"r{i}", {"mixer": m}, cfg))
    return out


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)            # both ways then train every run on one thread: bit-identical results
    yield
    torch.set_num_threads(threads)


def measured(record):
    """A record without its timings."""
    return {k: v for k, v in record.items() if k not in ("train_seconds", "tokens_per_second")}


def test_workers_train_the_same_runs_as_one_process_and_leave_finished_ones_alone(tmp_path, one_thread):
    together = run_sweep(runs(), tmp_path / "one", progress=False)
    run_sweep(runs()[:1], tmp_path / "two", progress=False)
    finished = (tmp_path / "two" / "runs" / "r0" / "result.json").stat().st_mtime_ns
    shown = io.StringIO()
    apart = run_sweep(runs(), tmp_path / "two", progress=LineProgress(every=0.0, out=shown, runs=3, done=1),
                      executor=LocalExecutor(2))
    assert (tmp_path / "two" / "runs" / "r0" / "result.json").stat().st_mtime_ns == finished
    assert [r["run"] for r in apart] == ["r0", "r1", "r2"]
    for a, b in zip(together, apart, strict=True):
        assert measured(a) == measured(b)
        assert losses(tmp_path / "one" / "runs" / a["run"]) == losses(tmp_path / "two" / "runs" / b["run"])
    lines = shown.getvalue().splitlines()                          # the workers' runs reported here
    for name in ("r1", "r2"):
        assert f"{name}: started, step 0/12" in lines and any(line.startswith(f"{name}: step 12/12, loss ")
                                                              for line in lines)
    ends = [line.split(":")[0].split() for line in lines if line.startswith("[")]     # "[2/3] r1: finished ..."
    assert sorted(count for count, _ in ends) == ["[2/3]", "[3/3]"] and sorted(n for _, n in ends) == ["r1", "r2"]


@pytest.mark.parametrize("workers", [1, 2])
def test_a_failing_run_stops_the_sweep_naming_the_run_with_its_traceback(tmp_path, one_thread, workers):
    with pytest.raises(RunsFailed) as failed:
        run_sweep(runs(("no_such_mixer", "gla")), tmp_path, progress=False, executor=LocalExecutor(workers))
    assert failed.value.stopped and [name for name, _ in failed.value.failures] == ["r0"]
    message = str(failed.value)
    assert "run r0 failed:\nTraceback" in message and "no_such_mixer" in message and "sweep stopped" in message


def test_a_users_mistake_in_a_run_stays_a_one_line_error_that_names_the_run(tmp_path, monkeypatch):
    def refuse(run_dir, config, reporter, overwrite):
        raise ConfigError("lm.data='nowhere' is not a corpus or a folder")

    monkeypatch.setattr(sweep, "_train_one", refuse)
    with pytest.raises(ConfigError, match=r"^run r0: lm.data='nowhere' is not a corpus or a folder$"):
        run_sweep(runs(("gla",)), tmp_path, progress=False)


@pytest.mark.parametrize("workers", [1, 2])
def test_keep_going_trains_the_other_runs_and_reports_every_failure(tmp_path, one_thread, workers):
    with pytest.raises(RunsFailed) as failed:
        run_sweep(runs(("no_such_mixer", "gla", "nor_this")), tmp_path, progress=False,
                  executor=LocalExecutor(workers, keep_going=True))
    assert [name for name, _ in failed.value.failures] == ["r0", "r2"]
    message = str(failed.value)
    assert "run r0 failed:\nTraceback" in message and "no_such_mixer" in message and "nor_this" in message
    assert "2 of 3 runs failed" in message
    assert [r["run"] for r in failed.value.records] == ["r1"]          # the other run finished, and is reported


def test_workers_must_be_positive():
    with pytest.raises(ValueError, match="workers must be a positive integer"):
        LocalExecutor(0)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads child processes from /proc")
def test_workers_end_when_the_sweep_process_is_killed(tmp_path):
    """A killed sweep leaves no worker training on (they would race a restarted sweep for the same runs)."""
    script = (f"import dataclasses; from tests.train.test_sweep_workers import runs; "
              f"from gatelab.train.sweep import run_sweep; from gatelab.train.executors import LocalExecutor; "
              f"run_sweep([dataclasses.replace(r, config=dataclasses.replace(r.config, max_steps=100000)) "
              f"for r in runs()], {str(tmp_path)!r}, progress=False, executor=LocalExecutor(2))")
    sweep = subprocess.Popen([sys.executable, "-c", script], cwd=Path(__file__).parents[2])
    try:
        deadline = time.monotonic() + 120
        while len(list(tmp_path.glob("runs/*/metrics.jsonl"))) < 2:      # both workers are training
            assert time.monotonic() < deadline and sweep.poll() is None
            time.sleep(0.5)
        workers = [pid for pid in children(sweep.pid) if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]
        assert len(workers) == 2
    finally:
        sweep.kill()
        sweep.wait()
    deadline = time.monotonic() + 30
    while any(Path(f"/proc/{pid}").exists() for pid in workers):
        assert time.monotonic() < deadline, "workers outlived the killed sweep"
        time.sleep(0.5)


def children(pid: int) -> list[int]:
    """Live child processes of ``pid`` (from /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out
