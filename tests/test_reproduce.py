"""The reproductions' verdict logic, spike counting, and each ``gatelab reproduce`` end to end in smoke mode."""
import json
import math

import pytest

from gatelab.cli import main
from gatelab.reproduce.lr_stability import count_spikes
from gatelab.reproduce.verdict import judge

from .utils import write_corpus


def test_verdicts_follow_the_effect_in_standard_errors():
    assert judge([10.0, 10.2, 9.8], [8.0, 8.1, 7.9], "lower").verdict == "reproduced"
    assert judge([10.0, 10.2, 9.8], [12.0, 12.1, 11.9], "lower").verdict == "not reproduced"
    assert judge([10.0, 11.0, 9.0], [9.8, 10.9, 9.1], "lower").verdict == "inconclusive"
    assert judge([1.0, 1.1], [2.0, 2.1], "higher").verdict == "reproduced"
    v = judge([10.0], [8.0], "lower")
    assert v.verdict == "inconclusive" and math.isnan(v.z)   # one seed cannot separate effect from noise
    v = judge([4.0, 6.0], [1.0, 3.0], "lower")
    assert v.effect == 3.0 and v.z == pytest.approx(3.0 / math.sqrt(2 / 2 + 2 / 2))


def test_spikes_are_losses_above_one_and_a_half_times_the_running_average():
    flat = [2.0] * 30
    assert count_spikes(flat) == 0
    spiky = flat[:20] + [3.5] + flat[:9]
    assert count_spikes(spiky) == 1
    assert count_spikes([2.0] * 5 + [9.0] + [2.0] * 5) == 0   # within the first 10 steps: not counted


@pytest.mark.parametrize("name", ["gated-attention", "quantizable", "lr-stability"])
def test_reproduce_runs_end_to_end_in_smoke_mode(name, tmp_path, monkeypatch):
    monkeypatch.setenv("GATELAB_DATA", str(tmp_path / "data"))
    data = write_corpus(tmp_path / "corpus", "the cat sat on the mat and the dog ate the log today\n" * 80)
    out = tmp_path / name
    assert main(["reproduce", name, "--smoke", "--seeds", "2", "--data", str(data), "--out", str(out),
                 "--no-progress"]) == 0
    report = (out / "report.md").read_text()
    assert "## Claims" in report and "Smoke mode" in report
    assert report.count("**reproduced**") + report.count("**not reproduced**") + report.count("**inconclusive**") >= 3
    records = json.loads((out / "records.json").read_text())
    assert len({r["seed"] for r in records}) == 2
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/result.json")}
    assert main(["reproduce", name, "--smoke", "--seeds", "2", "--data", str(data), "--out", str(out),
                 "--no-progress"]) == 0   # resumes: nothing retrained
    assert stamps == {p: p.stat().st_mtime_ns for p in out.glob("runs/*/result.json")}
