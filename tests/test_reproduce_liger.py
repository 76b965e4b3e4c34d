"""``gatelab reproduce liger`` end to end in smoke mode, and the level verdict of its headline claim."""
import json
import math

import pytest

from gatelab.cli import main
from gatelab.reproduce.liger import diverged_note, level_lines
from gatelab.reproduce.verdict import judge_level
from tests.utils import write_corpus


def test_a_level_is_reached_missed_or_unresolved_in_standard_errors():
    assert judge_level(0.97, 0.01, 0.93).verdict == "reproduced"
    assert judge_level(0.85, 0.02, 0.93).verdict == "not reproduced"
    assert judge_level(0.95, 0.02, 0.93).verdict == "inconclusive"
    v = judge_level(0.90, None, 0.93)
    assert v.verdict == "inconclusive" and math.isnan(v.z) and v.effect == pytest.approx(-0.03)


def test_reproduce_liger_runs_end_to_end_in_smoke_mode(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GATELAB_DATA", str(tmp_path / "data"))
    data = write_corpus(tmp_path / "corpus", "the cat sat on the mat and the dog ate the log today\n" * 80)
    out = tmp_path / "liger"
    argv = ["reproduce", "liger", "--smoke", "--seeds", "2", "--data", str(data), "--out", str(out), "--no-progress"]
    assert main(argv) == 0, capsys.readouterr().out
    report = (out / "report.md").read_text()
    assert "Smoke mode" in report and "## The headline" in report
    headline = next(line for line in report.splitlines() if line.startswith("| Liger recovers at least 93%"))
    assert "**untestable here** (" in headline     # 16 cloze items: fewer than the 25 a teacher must get right
    ablations = [line for line in report.split("## Claims")[1].splitlines() if line.startswith("| Liger recovers more")]
    assert len(ablations) == 3 and all("**" in line for line in ablations)
    records = json.loads((out / "records.json").read_text())
    assert {r["variant"] for r in records} == {"teacher", "liger", "gla", "swa", "linear_attn"}
    assert {r["seed"] for r in records} == {0, 1}
    assert all(r["recovered"] > 0 for r in records if r["variant"] != "teacher")
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("**/result.json")}
    assert main(argv) == 0                            # resumes: nothing retrained
    assert stamps == {p: p.stat().st_mtime_ns for p in out.glob("**/result.json")}


def _records(values, ses, correct=122, diverged=()):
    teacher = [{"variant": "teacher", "seed": s, "cloze_correct": correct} for s in range(len(values))]
    return teacher + [{"variant": "liger", "seed": s, "recovered_acc": v, "recovered_acc_se": se,
                       "diverged": s in diverged} for s, (v, se) in enumerate(zip(values, ses, strict=True))]


def _headline(records):
    return next(line for line in level_lines(records) if line.startswith("| Liger recovers at least 93%"))


def test_the_headline_adds_item_and_seed_error_and_needs_two_seeds():
    line = _headline(_records([0.98, 1.00], [0.03, 0.04]))
    se = math.sqrt((0.03**2 + 0.04**2) / 2 + 0.02**2 / 2 / 2)                      # 3.7%: 1.6 SE above 93%
    assert f"99.0% ± {100 * se:.1f}" in line and "**inconclusive**" in line
    assert "**reproduced**" in _headline(_records([1.00, 1.01], [0.0, 0.0]))        # a zero error is an error
    one = _headline(_records([1.5], [0.01]))
    assert "**inconclusive** (one seed" in one
    assert "**untestable here**" in _headline(_records([1.0, 1.0], [0.01, 0.01], correct=24))


def test_a_diverged_student_counts_as_recovering_nothing():
    records = _records([0.0, 1.0], [0.0, 0.01], diverged=(0,))
    assert "50.0%" in _headline(records) and "liger seed 0" in diverged_note(records)


def test_quick_mode_trains_its_teacher_on_ptb_only(tmp_path, capsys):
    assert main(["reproduce", "liger", "--quick", "--data", "shakespeare", "--out", str(tmp_path / "o")]) == 2
    assert "--data shakespeare: reproduce liger --quick trains its word-level teacher on ptb" in capsys.readouterr().out
    assert not (tmp_path / "o").exists()
