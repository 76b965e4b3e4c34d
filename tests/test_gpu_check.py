"""benchmarks/gpu_check.py in its dry mode (tiny shapes on the CPU, torch backend): every section runs, the
equality checks pass, and ``--out`` naming a folder writes gpu_check.csv/.json into it (as on the GPU machine)."""
import json

import pytest

from benchmarks import gpu_check


@pytest.fixture(autouse=True)
def _default_memory_policy(monkeypatch):
    monkeypatch.setenv("GATELAB_KEEP_FREED_MEMORY", "0")


def test_dry_run_writes_every_section_into_the_out_folder(tmp_path, capsys):
    gpu_check.main(["--dry", "--out", str(tmp_path)])
    rows = json.loads((tmp_path / "gpu_check.json").read_text())
    assert (tmp_path / "gpu_check.csv").stat().st_size > 0
    sections = {r["section"] for r in rows}
    assert sections == {"equality", "ops", "training"}
    equality = [r for r in rows if r["section"] == "equality"]
    assert equality and all(r["ok"] for r in equality)
    assert {r["impl"] for r in rows if r["section"] == "ops"} == {"gatelab torch", "sdpa causal"}
    models = {r["model"] for r in rows if r["section"] == "training"}
    assert models == {*gpu_check.MIXERS, "transformers Llama"}
    assert all(r["device"].startswith("cpu") and "git_commit" in r for r in rows)
    assert "equality checks: " in capsys.readouterr().out
