"""A run folder holds one configuration, written by one process at a time: no stale outputs, no silent reuse of
another configuration's results, no interleaved writers, no leftover temporary files, readable file modes."""
import contextlib
import csv
import dataclasses
import fcntl
import json
import os
import subprocess
import sys

import pytest

import gatelab.train.loop as loop
from gatelab.cli import main
from gatelab.config import ConfigError
from gatelab.train import train
from gatelab.train.lock import LOCK_FILE, FolderBusy
from gatelab.train.sweep import SweepRun, run_sweep

from .test_resume import config


def short(**changes):
    return dataclasses.replace(config(), **{"max_steps": 4, "eval_every": 2, "checkpoint_every": 2, **changes})


def killed_at(step, monkeypatch, fn, *args, **kwargs):
    """Run ``fn`` with training interrupted (as by a kill) when it reaches ``step``."""
    real = loop.lr_at

    def lr_at(s, total, cfg):
        if s == step:
            raise KeyboardInterrupt
        return real(s, total, cfg)

    monkeypatch.setattr(loop, "lr_at", lr_at)
    with pytest.raises(KeyboardInterrupt):
        fn(*args, **kwargs)
    monkeypatch.setattr(loop, "lr_at", real)


def test_a_new_run_clears_every_output_of_the_run_before(tmp_path, monkeypatch):
    run = tmp_path / "run"
    train(short(), run, progress=False)
    (run / "analysis").mkdir()
    (run / "measure.json").write_text("{}")
    killed_at(1, monkeypatch, train, short(), run, progress=False)     # the same config again, killed early
    assert sorted(p.name for p in run.iterdir()) == [LOCK_FILE, "config.json", "meta.json", "metrics.jsonl"]


def test_a_folder_of_another_configuration_is_refused_unless_overwritten(tmp_path):
    run = tmp_path / "run"
    train(short(), run, progress=False)
    (run / "analysis").mkdir()
    with pytest.raises(ConfigError, match=rf"{run} holds a run of another configuration \(max_steps: 4 there, 6 "
                                          r"here; model.d_model: 16 there, 32 here\); pass --overwrite"):
        train(short(max_steps=6, model=dataclasses.replace(config().model, d_model=32)), run, progress=False)
    assert json.loads((run / "result.json").read_text())["steps"] == 4 and (run / "analysis").exists()
    assert train(short(max_steps=6), run, progress=False, overwrite=True)["steps"] == 6
    assert not (run / "analysis").exists()


def test_a_folder_with_outputs_but_no_config_is_not_taken_over(tmp_path):
    (tmp_path / "model").mkdir()
    with pytest.raises(ConfigError, match=rf"{tmp_path} holds run outputs \(model\) but no config.json"):
        train(short(), tmp_path, progress=False)


def steps_in(out):
    with open(out / "results.csv") as f:
        return [int(r["steps"]) for r in csv.DictReader(f)]


def test_compare_never_reports_another_configurations_run_as_finished(tmp_path, capsys, monkeypatch):
    """The issue's repro: a finished 20-step sweep, then the same with more steps killed part-way, then rerun."""
    out = tmp_path / "cmp"
    command = ["compare", "--quick", "--mixers", "attn", "--seq-lens", "16", "--out", str(out), "--no-progress"]
    assert main([*command, "--steps", "4"]) == 0
    assert main([*command, "--steps", "6"]) == 2                     # refused before anything trains
    assert f"{out / 'runs' / 'attn-d16-T16-s0-lr0.003'} holds a run of another configuration (max_steps: 4 there, " \
           "6 here); pass --overwrite" in capsys.readouterr().out.replace("\n", "")
    assert steps_in(out) == [4]
    killed_at(3, monkeypatch, main, [*command, "--steps", "6", "--overwrite"])
    assert main([*command, "--steps", "6"]) == 0                     # the interrupted run trains on to the end
    assert steps_in(out) == [6]


@contextlib.contextmanager
def held_by_another_process(folder):
    """Another process holding ``folder``'s lock as gatelab takes it (flock on the lock file, its pid inside)."""
    folder.mkdir(parents=True, exist_ok=True)
    code = ("import fcntl, os, sys, time\n"
            f"fd = os.open({str(folder / LOCK_FILE)!r}, os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "os.write(fd, str(os.getpid()).encode())\n"
            "print('held', flush=True)\n"
            "time.sleep(300)\n")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline() == b"held\n"
        yield holder
    finally:
        holder.kill()
        holder.wait()


def test_a_second_process_on_a_run_folder_stops_and_names_the_holder(tmp_path):
    run = tmp_path / "run"
    with held_by_another_process(run) as holder:
        with pytest.raises(FolderBusy, match=rf"the run folder {run} is in use by another gatelab process "
                                             rf"\(pid {holder.pid}\)"):
            train(short(), run, progress=False)
        assert not (run / "config.json").exists()
    assert train(short(), run, progress=False)["steps"] == 4           # the holder died: its lock went with it
    fd = os.open(run / LOCK_FILE, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)                 # and train released its own
    finally:
        os.close(fd)


def test_a_second_sweep_on_a_folder_stops_and_a_run_another_process_holds_is_skipped(tmp_path):
    runs = [SweepRun(f"r{i}", {"mixer": "gla,attn", "seed": i}, short(seed=i)) for i in range(2)]
    with held_by_another_process(tmp_path) as holder:
        with pytest.raises(FolderBusy, match=rf"the sweep folder {tmp_path} is in use .* \(pid {holder.pid}\).*"
                                             "--report-only"):
            run_sweep(runs, tmp_path, progress=False)
        assert run_sweep(runs, tmp_path, progress=False, train_missing=False) == []   # reading takes no lock
    from gatelab.train.progress import RunProgress

    class Notes(RunProgress):
        def __init__(self):
            self.notes = []

        def note(self, name, text):
            self.notes.append((name, text))

    notes = Notes()
    with held_by_another_process(tmp_path / "runs" / "r1") as holder:
        records = run_sweep(runs, tmp_path, progress=notes)
    assert [r["run"] for r in records] == ["r0"]
    assert notes.notes == [("r1", f"skipped: the run folder {tmp_path / 'runs' / 'r1'} is in use by another "
                                  f"gatelab process (pid {holder.pid}); wait for it to finish or stop it, or use "
                                  "another folder")]


def test_temporary_files_a_kill_left_are_removed_when_the_folder_starts_again(tmp_path, monkeypatch):
    run = tmp_path / "run"
    killed_at(3, monkeypatch, train, short(keep_checkpoints=True), run, progress=False)
    orphans = [run / "checkpoint.safetensors.k2j4h6g8.tmp", run / "result.json.abc_1234.tmp",     # (mkstemp's names)
               run / "checkpoints" / "step-000004.safetensors.tmp", run / "meta.json.0123abcd.tmp"]
    for path in orphans:
        path.write_bytes(b"half a file")
    (run / "notes.tmp").write_text("not ours")
    train(short(keep_checkpoints=True), run, progress=False, resume=True)
    assert not [p for p in orphans if p.exists()]
    assert (run / "notes.tmp").exists()


def test_every_file_a_run_writes_has_the_mode_the_umask_gives(tmp_path):
    umask = os.umask(0o027)
    try:
        train(short(keep_checkpoints=True), tmp_path / "run", progress=False)
    finally:
        os.umask(umask)
    modes = {str(p.relative_to(tmp_path / "run")): p.stat().st_mode & 0o777
             for p in (tmp_path / "run").rglob("*") if p.is_file()}
    assert "model/model.safetensors" in modes and "checkpoint.safetensors" in modes
    assert "checkpoints/step-000002.safetensors" in modes
    assert set(modes.values()) == {0o640}, modes


def test_a_sweep_names_an_unreadable_config_and_overwrite_replaces_it(tmp_path):
    runs = [SweepRun("r0", {"mixer": "gla,attn"}, short())]
    run_sweep(runs, tmp_path, progress=False)
    stored = tmp_path / "runs" / "r0" / "config.json"
    stored.write_text(stored.read_text()[:40])
    with pytest.raises(ConfigError, match=f"{stored} is not a readable run configuration"):
        run_sweep(runs, tmp_path, progress=False)
    assert [r["steps"] for r in run_sweep(runs, tmp_path, progress=False, overwrite=True)] == [4]
