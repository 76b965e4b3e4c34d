"""``gatelab compare`` over channel mixers and residual connections: the grid, parameter matching, the report."""
import json

import pytest

from gatelab.cli import main
from gatelab.models.params import count_active_params, count_params
from gatelab.presets import preset
from gatelab.report.compare import grid_fingerprint


def test_the_grid_varies_channels_and_residuals_and_matches_parameters():
    grid = preset("lm-quick")
    grid.mixers, grid.channels, grid.residuals = ["attn"], ["swiglu", "mlp"], ["add", "gtrxl_output"]
    runs = grid.runs(vocab_size=300)
    assert [(r.coords["channel"], r.coords["residual"]) for r in runs] == [
        ("swiglu", "add"), ("swiglu", "gtrxl_output"), ("mlp", "add"), ("mlp", "gtrxl_output")]
    assert runs[0].name == "attn-swiglu-add-d32-T32-s0-lr0.01"
    counts = [count_params(r.config.resolved(300).model) for r in runs]
    assert all(abs(c - counts[0]) / counts[0] < 0.02 for c in counts), counts
    assert len({r.config.model.d_ff for r in runs}) == 4


def test_a_grid_that_does_not_vary_channels_keeps_its_names():
    grid = preset("lm-quick")
    before = grid_fingerprint(grid), [r.name for r in grid.runs(vocab_size=300)]
    grid.channels = ["swiglu"]
    assert grid_fingerprint(grid) != before[0]
    grid.channels = None
    assert (grid_fingerprint(grid), [r.name for r in grid.runs(vocab_size=300)]) == before
    assert "channel" not in grid.runs(vocab_size=300)[0].coords


def test_active_parameters_equal_all_parameters_for_dense_models():
    cfg = preset("lm-quick").base.model
    assert count_active_params(cfg) == count_params(cfg)


def test_compare_runs_channels_and_residuals_from_the_command_line(tmp_path):
    out = tmp_path / "cmp"
    assert main(["compare", "--task", "lm", "--quick", "--mixers", "gla", "--channels", "swiglu,mlp", "--residuals",
                 "add,ladder", "--steps", "4", "--out", str(out), "--no-progress"]) == 0
    rows = (out / "summary.csv").read_text().splitlines()
    assert rows[0].startswith("mixer,channel,residual,d_model") and len(rows) == 5
    report = (out / "report.md").read_text()
    assert "| mixer | channel | residual | d_model |" in report
    assert "parameter-matched to the first mixer and channel and residual" in report
    grid = json.loads((out / "grid.json").read_text())["grid"]
    assert grid["channels"] == ["swiglu", "mlp"] and grid["residuals"] == ["add", "ladder"]


@pytest.mark.parametrize("flag,value,match", [
    ("--channels", "swiglu,nope", "unknown channel mixer 'nope'"),
    ("--channels", "swiglu,", "has an empty item"),
    ("--residuals", "add,sum", "unknown residual connection 'sum'"),
])
def test_bad_channel_and_residual_lists_are_named(flag, value, match, capsys):
    assert main(["compare", "--task", "lm", "--quick", flag, value]) == 2
    assert match in capsys.readouterr().err
