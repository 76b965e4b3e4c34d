"""The benchmarks run as their usage lines say (``python benchmarks/X.py`` and ``python -m benchmarks.X``), every
flag has help, the default output is not the committed ``benchmarks/results/``, ``--smoke`` runs each one in
seconds, and transformers' reference runs where flash-linear-attention is installed on a CPU machine."""
from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
NAMES = sorted(p.stem for p in (ROOT / "benchmarks").glob("*.py") if p.stem not in ("__init__", "common")
               and not p.stem.startswith("_"))


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


def test_lra_lengths_counts_the_peak_of_each_call_from_its_start():
    """The peak is what the call itself holds at once: two live MiB, not the 3 MiB it allocates in all, nor the
    block freed in it that was allocated before; and the profiler's running total does not leak into the next
    call's count."""
    from benchmarks.lra_lengths import peak_bytes

    before, kept = [torch.empty(2**18)], []

    def fn():
        before.clear()
        a = torch.empty(2**18)          # 1 MiB of float32
        b = torch.empty(2**18)
        del a
        kept.append(torch.empty(2**18))
        del b

    assert peak_bytes(fn) == 2 * 2**20
    assert peak_bytes(fn) == 2 * 2**20    # the first call's result, still held, is not this call's


def test_lra_lengths_rows_hold_every_mixer_and_form_against_attn(tmp_path):
    from benchmarks.lra_lengths import main

    main(["--smoke", "--mixers", "gla,probsparse", "--out", str(tmp_path / "rows")])
    rows = json.loads((tmp_path / "rows.json").read_text())
    assert {(r["form"], r["mixer"]) for r in rows} == {(f, m) for f in ("causal", "bidirectional")
                                                         for m in ("attn", "gla", "probsparse")}
    for r in rows:
        assert r["peak_mb"] > 0 and r["seconds"] > 0
        if r["mixer"] == "attn":
            assert r["time_vs_attn"] == r["peak_vs_attn"] == 1.0


def test_lra_lengths_names_the_valid_mixers_for_an_unknown_one(capsys):
    from benchmarks.lra_lengths import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["--mixers", "gla,no_such_mixer"])
    err = capsys.readouterr().err
    assert "no_such_mixer" in err and "mamba2" in err


def test_ops_forms_must_name_known_forms(capsys):
    module = importlib.import_module("benchmarks.ops")
    with pytest.raises(SystemExit):
        module.build_parser().parse_args(["--forms", "atlas,nope"])
    assert "unknown form nope; choose from atlas" in capsys.readouterr().err
    assert module.build_parser().parse_args(["--forms", "atlas,lmu_fft"]).forms == ["atlas", "lmu_fft"]
