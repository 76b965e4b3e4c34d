"""A sweep on Ray computes what the local executor computes at the same thread count, resumes a killed sweep,
reports a failed run with its traceback, and refuses bad executor flags before anything trains.

One local Ray (2 CPUs) serves the module; the command-line test starts its own when none is running."""
from __future__ import annotations

import csv
import io
import logging
import os
import re
import sys

import pytest
import ray
import torch

from gatelab.cli import main
from gatelab.config import ConfigError
from gatelab.train.executors import RayExecutor, RunsFailed, make_executor
from gatelab.train.progress import LineProgress
from gatelab.train.sweep import SweepRun, run_sweep

from .test_resume import config, kill_at_step_25, losses
from .test_sweep_workers import measured, runs

QUICK = ["compare", "--quick", "--seq-lens", "16", "--steps", "10", "--no-progress"]


@pytest.fixture(scope="module")
def local_ray():
    """A Ray on this machine for the module's tests (the executor uses a Ray this process has started)."""
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
                 object_store_memory=100 * 2**20)
    yield
    ray.shutdown()


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)            # the local executor on one thread, as each Ray task (--cpus-per-run 1)
    yield
    torch.set_num_threads(threads)


def table(out: str) -> list[str]:
    """The rows of the printed summary table without its tokens/s column (a timing)."""
    return [row.rsplit("│", 2)[0] for row in out.splitlines() if row.startswith("│")]


def test_compare_on_ray_reports_what_compare_on_this_machine_reports(tmp_path, capsys, monkeypatch, one_thread):
    assert main([*QUICK, "--out", str(tmp_path / "local")]) == 0
    local = capsys.readouterr().out
    had_ray = ray.is_initialized()
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:9")      # a Ray for the sweep is not any Ray the environment names
    assert main([*QUICK, "--out", str(tmp_path / "ray"), "--executor", "ray", "--cpus-per-run", "1"]) == 0
    on_ray = capsys.readouterr().out
    assert ray.is_initialized() == had_ray          # a Ray started for the sweep ends with it
    assert len(table(local)) == 2 and table(on_ray) == table(local)

    def results(folder):
        with open(tmp_path / folder / "results.csv") as f:
            return [{k: v for k, v in row.items() if k not in ("train_seconds", "tokens_per_second")}
                    for row in csv.DictReader(f)]

    assert results("ray") == results("local")
    for run in (tmp_path / "local" / "runs").iterdir():
        assert losses(run) == losses(tmp_path / "ray" / "runs" / run.name)


def test_ray_trains_what_the_local_executor_trains_and_resumes_a_killed_sweep(tmp_path, monkeypatch, local_ray,
                                                                             one_thread):
    """r0 finished before (read back, not retrained), r1 never started, r2 killed at step 25 of 30 after its
    checkpoint at step 20 (resumed from it): the Ray sweep ends with exactly the local executor's runs."""
    grid = [*runs(("gla", "attn")), SweepRun("r2", {"mixer": "gla,attn"}, config())]
    together = run_sweep(grid, tmp_path / "local", progress=False)

    run_sweep(grid[:1], tmp_path / "ray", progress=False)
    finished = (tmp_path / "ray" / "runs" / "r0" / "result.json").stat().st_mtime_ns
    kill_at_step_25(tmp_path / "ray" / "runs" / "r2", monkeypatch)
    shown = io.StringIO()
    on_ray = run_sweep(grid, tmp_path / "ray", progress=LineProgress(out=shown, runs=3, done=1),
                       executor=RayExecutor(cpus_per_run=1))

    assert (tmp_path / "ray" / "runs" / "r0" / "result.json").stat().st_mtime_ns == finished
    assert [r["run"] for r in on_ray] == ["r0", "r1", "r2"] and {r["threads"] for r in on_ray} == {1}
    for a, b in zip(together, on_ray, strict=True):
        assert measured(a) == measured(b)
        assert losses(tmp_path / "local" / "runs" / a["run"]) == losses(tmp_path / "ray" / "runs" / b["run"])
    lines = shown.getvalue().splitlines()           # the tasks' reports, replayed here as each run ends
    assert "r1: started, step 0/12" in lines and "r2: resumed at step 20/30" in lines
    ends = [line.split(":")[0].split() for line in lines if line.startswith("[")]   # "[2/3] r1": either may end first
    assert sorted(count for count, _ in ends) == ["[2/3]", "[3/3]"] and sorted(n for _, n in ends) == ["r1", "r2"]


def test_a_failing_run_stops_the_ray_sweep_with_its_traceback(tmp_path, local_ray):
    with pytest.raises(RunsFailed) as failed:
        run_sweep(runs(("no_such_mixer", "gla")), tmp_path, progress=False, executor=RayExecutor())
    assert failed.value.stopped and [name for name, _ in failed.value.failures] == ["r0"]
    message = str(failed.value)
    assert re.search(r"run r0 failed:\nTraceback \(most recent call last\):\n.*in _train_one\n.*"
                     r"KeyError: \"unknown token mixer 'no_such_mixer'", message, re.S)
    assert "the sweep stopped" in message and "--keep-going" in message


def test_keep_going_on_ray_trains_the_other_runs_and_reports_every_failure(tmp_path, local_ray, capsys):
    grid = runs(("no_such_mixer", "gla", "nor_this"))
    with pytest.raises(RunsFailed) as failed:
        run_sweep(grid, tmp_path, progress=False, executor=RayExecutor(keep_going=True))
    assert not failed.value.stopped and [name for name, _ in failed.value.failures] == ["r0", "r2"]
    assert [r["run"] for r in failed.value.records] == ["r1"]
    assert "nor_this" in str(failed.value) and "2 of 3 runs failed" in str(failed.value)


def test_keep_going_on_the_command_line_reports_the_finished_runs_then_the_failures(tmp_path, local_ray, capsys):
    """A run left with a damaged checkpoint fails as it resumes (in its task); the other run trains, the report
    covers it, and the command ends with the failure's traceback and exit status 1."""
    assert main([*QUICK, "--mixers", "attn", "--out", str(tmp_path)]) == 0
    [run] = (tmp_path / "runs").iterdir()
    (run / "result.json").unlink()
    (run / "checkpoint.safetensors").write_bytes(b"damaged")
    capsys.readouterr()
    assert main([*QUICK, "--mixers", "attn,gla", "--out", str(tmp_path), "--executor", "ray", "--keep-going"]) == 1
    out = capsys.readouterr().out
    report, error = out.split("error:")
    assert [row.split("│")[1].strip() for row in table(report)] == ["gla"]
    assert "1 of 2 runs finished; the report covers those" in report
    assert f"run {run.name} failed:\nTraceback (most recent call last):" in error
    assert "checkpoint.safetensors" in error and "1 of 2 runs failed" in error


CASES = [
    (["--cpus-per-run", "0"], r"--cpus-per-run.*0"),
    (["--cpus-per-run", "1.5"], r"--cpus-per-run.*1\.5"),
    (["--gpus-per-run", "-1"], r"--gpus-per-run.*-1"),
    (["--gpus-per-run", "nan"], r"--gpus-per-run.*nan"),
    (["--address", "auto"], r"--address applies to --executor ray"),
    (["--cpus-per-run", "1"], r"--cpus-per-run applies to --executor ray"),
    (["--executor", "ray", "--workers", "2"], r"--workers applies to --executor local"),
    (["--executor", "ray", "--address", "localhost"], r"--address 'localhost' is not a Ray address"),
    (["--executor", "ray", "--address", "ray://head:99999"], r"--address 'ray://head:99999' is not a Ray"),
    (["--executor", "ray", "--address", "http://head:10001"], r"--address 'http://head:10001' is not a Ray"),
    (["--executor", "ray", "--cpus-per-run", "100000"], r"--cpus-per-run 100000: this machine has \d+ CPUs"),
    (["--executor", "dask"], r"--executor.*dask"),
]
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
REPRODUCE = ["reproduce", "gated-attention", "--smoke", "--no-progress"]


@pytest.mark.parametrize(("command", "flags", "pattern"), [
    *[pytest.param(command, flags, pattern, id=f"{command[0]}{' '.join(flags)}")
      for command in (QUICK, REPRODUCE) for flags, pattern in CASES],
    *[pytest.param(command, ["--executor", "ray", "--gpus-per-run", "1"], r"--gpus-per-run 1, but CUDA is not "
                   "available here", marks=NO_CUDA, id=f"{command[0]}-gpus-without-cuda")
      for command in (QUICK, REPRODUCE)],
    pytest.param(QUICK, ["--executor", "ray", "--set", "device=cuda"], r"device=.cuda., but CUDA is not available",
                 marks=NO_CUDA, id="compare-cuda-without-cuda")])
def test_bad_executor_flags_are_clear_errors_before_anything_trains(command, flags, pattern, tmp_path, capsys):
    assert main([*command, "--out", str(tmp_path / "out"), *flags]) == 2
    captured = capsys.readouterr()
    message = captured.out + captured.err
    assert re.search(pattern, message) and "Traceback" not in message
    assert not (tmp_path / "out" / "runs").exists()


def test_a_missing_ray_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)           # import ray: ImportError
    assert main([*QUICK, "--out", str(tmp_path), "--executor", "ray"]) == 2
    assert 'error: --executor ray needs Ray: pip install -e ".[ray]"' in capsys.readouterr().out


def test_gpus_per_run_must_match_the_runs_device():
    """(Checked where a cluster's GPUs count, not this machine's: an address given.)"""
    cluster = "ray://head:10001"
    with pytest.raises(ValueError, match=r"--gpus-per-run 1 reserves GPUs for runs on device='cpu'"):
        make_executor("ray", address=cluster, gpus_per_run=1, device="cpu")
    with pytest.raises(ValueError, match=r"device='cuda' needs a GPU per run on Ray: give --gpus-per-run"):
        make_executor("ray", address=cluster, device="cuda")
    assert make_executor("ray", address=cluster, gpus_per_run=0.5, device="cuda").gpus == 0.5
    with pytest.raises(ValueError, match=r"--cpus-per-run 0: it must be an integer >= 1"):
        make_executor("ray", cpus_per_run=0)


def test_a_run_too_big_for_every_node_of_a_cluster_is_refused_before_it_waits_for_ever():
    from gatelab.train.executors.on_ray import check_a_node_fits

    nodes = [{"CPU": 4.0}, {"CPU": 2.0, "GPU": 1.0}]
    check_a_node_fits(nodes, 4, 0.0, "auto")
    check_a_node_fits(nodes, 2, 0.5, "auto")
    with pytest.raises(ConfigError, match=r"--address auto: no node of the cluster has --cpus-per-run 4 CPUs and "
                                          r"--gpus-per-run 1 GPUs .*its nodes: 4 CPUs/0 GPUs, 2 CPUs/1 GPUs"):
        check_a_node_fits(nodes, 4, 1.0, "auto")
    with pytest.raises(ConfigError, match="no live node"):
        check_a_node_fits([], 1, 0.0, "ray://head:10001")
