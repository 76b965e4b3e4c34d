"""The benchmarks run as their usage lines say (``python benchmarks/X.py`` and ``python -m benchmarks.X``), every
flag has help, the default output is not the committed ``benchmarks/results/``, ``--smoke`` runs each one in
seconds, and transformers' reference runs where flash-linear-attention is installed on a CPU machine."""
from __future__ import annotations

import argparse
import importlib
import os
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NAMES = sorted(p.stem for p in (ROOT / "benchmarks").glob("*.py") if p.stem not in ("__init__", "common"))


@pytest.fixture(autouse=True)
def _default_memory_policy(monkeypatch):
    monkeypatch.setenv("GATELAB_KEEP_FREED_MEMORY", "0")   # keep the test process's allocator as it is


def test_the_benchmarks_page_describes_every_benchmark():
    text = (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    assert NAMES and set(re.findall(r"python -m benchmarks\.(\w+)", text)) == set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_every_flag_has_help_and_the_default_out_is_not_the_committed_results(name, capsys):
    module = importlib.import_module(f"benchmarks.{name}")
    parser = module.build_parser()
    for action in parser._actions:
        assert action.help and action.help != argparse.SUPPRESS, f"{name}: {action.option_strings} has no help"
    out = parser.parse_args([]).out
    assert not (ROOT / out).resolve().is_relative_to(ROOT / "benchmarks"), out
    with pytest.raises(SystemExit) as exit_:
        module.main(["--help"])
    assert exit_.value.code == 0 and "--smoke" in capsys.readouterr().out


@pytest.mark.parametrize("name", NAMES)
def test_smoke_runs_write_their_rows_where_asked(name, tmp_path):
    importlib.import_module(f"benchmarks.{name}").main(["--smoke", "--out", str(tmp_path / name)])
    assert (tmp_path / f"{name}.csv").stat().st_size > 0 and (tmp_path / f"{name}.json").stat().st_size > 0


@pytest.mark.parametrize("name", NAMES)
def test_each_benchmark_file_imports_its_checkout_when_run_as_a_file(name, monkeypatch):
    """``python benchmarks/X.py`` puts benchmarks/ (not the repository) first on sys.path: the file must still
    find the ``benchmarks`` package (it failed with "No module named 'benchmarks'")."""
    monkeypatch.setattr(sys, "path", [str(ROOT / "benchmarks")] + [p for p in sys.path if p not in ("", str(ROOT))])
    for module in [m for m in sys.modules if m == "benchmarks" or m.startswith("benchmarks.")]:
        monkeypatch.delitem(sys.modules, module)
    namespace = runpy.run_path(str(ROOT / "benchmarks" / f"{name}.py"), run_name="benchmark_as_a_file")
    assert callable(namespace["build_parser"])


FAKE_FLA = '''def chunk_gated_delta_rule(*args, **kwargs):
    raise RuntimeError("0 active drivers ([]). There should only be one.")   # what Triton says on a CPU machine


fused_recurrent_gated_delta_rule = chunk_gated_delta_rule
'''


def test_transformers_reference_runs_with_flash_linear_attention_on_a_cpu_machine(tmp_path):
    """With fla importable, transformers routes its pure-torch gated delta rule to fla's Triton kernel, which dies
    on a CPU; the benchmark measures the pure-torch function it wraps. Run as its usage line says, from elsewhere."""
    package = tmp_path / "site" / "fla" / "ops" / "gated_delta_rule"
    package.mkdir(parents=True)
    for folder in (package.parent.parent, package.parent):
        (folder / "__init__.py").write_text("")
    (package / "__init__.py").write_text(FAKE_FLA)
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site"), "GATELAB_KEEP_FREED_MEMORY": "0"}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "recurrent_ops.py"), "--smoke",
                           "--only-transformers", "--out", str(tmp_path / "rows")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "transformers torch_chunk_gated_delta_rule chunk 64" in done.stdout
    assert (tmp_path / "rows.csv").exists()
