"""The reproductions' verdict logic, spike counting, and each ``gatelab reproduce`` end to end in smoke mode."""
import json
import math
import os
import re
from pathlib import Path

import pytest

from gatelab.cli import main
from gatelab.reproduce import gated_attention, quantizable
from gatelab.reproduce.gated_attention import sink_precondition
from gatelab.reproduce.lr_stability import count_spikes
from gatelab.reproduce.report import write_report
from gatelab.reproduce.verdict import Claim, Precondition, judge, judge_claim, judge_no_worse

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


SINK = Precondition("a sink in the baseline", "f_attn", "baseline", 0.07, "twice uniform attention")
CLAIM = Claim("G1 removes the sink", "f_attn", "baseline", "g1", "lower", "0.467 → 0.048", SINK)


def test_a_claim_of_no_loss_is_judged_against_its_margin():
    control = [100.0, 100.5, 99.5]
    assert judge_no_worse(control, [100.2, 100.4, 100.0], "lower", 0.01).verdict == "reproduced"   # within 1%
    assert judge_no_worse(control, [104.0, 104.5, 103.5], "lower", 0.01).verdict == "not reproduced"
    assert judge_no_worse(control, [101.0, 102.5, 99.5], "lower", 0.01).verdict == "inconclusive"
    assert judge_no_worse([0.50, 0.51], [0.49, 0.50], "higher", 0.05).verdict == "reproduced"      # accuracy
    v = judge_no_worse(control, [100.0, 100.5, 99.5], "lower", 0.01)
    assert v.effect == pytest.approx(1.0) and v.z > 2
    claim = Claim("no loss", "ppl", "a", "b", "lower", "-", margin=0.01)
    assert judge_claim(claim, {"ppl": {"a": control, "b": [104.0, 104.5, 103.5]}}).verdict == "not reproduced"


def test_a_claim_whose_precondition_fails_is_untestable_whatever_the_comparison_shows():
    no_sink = {"f_attn": {"baseline": [0.030, 0.031, 0.029], "g1": [0.020, 0.021, 0.019]}}
    v = judge_claim(CLAIM, no_sink)
    assert v.verdict == "untestable here" and v.z > 2   # the effect is there, but no sink to remove
    assert v.precondition == "precondition: a sink in the baseline, f_attn of baseline ≥ 0.07; measured 0.03"
    sink = {"f_attn": {"baseline": [0.47, 0.45, 0.46], "g1": [0.05, 0.06, 0.04]}}
    v = judge_claim(CLAIM, sink)
    assert v.verdict == "reproduced" and v.precondition.endswith("measured 0.46")
    kept = {"f_attn": {"baseline": [0.47, 0.45, 0.46], "g1": [0.46, 0.45, 0.47]}}
    assert judge_claim(CLAIM, kept).verdict == "inconclusive"
    assert judge_claim(CLAIM, {"f_attn": {"g1": [0.1, 0.2]}}).verdict == "untestable here"   # nothing measured
    plain = Claim("G1 lowers perplexity", "ppl", "baseline", "g1", "lower", "6.0 → 5.8")
    assert judge_claim(plain, {"ppl": {"baseline": [10.0, 10.1], "g1": [9.0, 9.1]}}).verdict == "reproduced"


def test_the_reviews_cases_are_untestable_here():
    """The full-mode runs the review read: G2 0.030 -> 0.033 read 'reproduced' and kurtosis 'not reproduced', in
    models whose baseline has no sink (F-Attn 0.029 at T = 128, uniform attention gives 0.035) and no outliers."""
    g2 = next(c for c in gated_attention.claims(128) if c.treatment == "g2_elementwise")
    f_attn = {"baseline": [0.0288, 0.0291, 0.0285], "g1_elementwise": [0.0300, 0.0318, 0.0281],
              "g2_elementwise": [0.0332, 0.0345, 0.0318]}
    assert judge(f_attn["g1_elementwise"], f_attn["g2_elementwise"], "higher").verdict == "reproduced"
    assert judge_claim(g2, {"f_attn": f_attn}).verdict == "untestable here"
    kurt = next(c for c in quantizable.CLAIMS if c.metric == "avg_kurtosis")
    groups = {"avg_kurtosis": {"vanilla": [4.27, 4.31, 4.36], "clipped_softmax": [6.30, 6.39, 6.47]}}
    assert judge_claim(kurt, groups).verdict == "untestable here"
    groups["avg_kurtosis"]["vanilla"] = [3076.0, 2900.0, 3200.0]
    assert judge_claim(kurt, groups).verdict == "reproduced"


def test_the_sink_floor_is_twice_uniform_attention_at_the_evaluated_length():
    pre = sink_precondition(128)
    assert pre.floor == pytest.approx(2 * sum(1 / (t + 1) for t in range(1, 128)) / 127)
    assert pre.floor == pytest.approx(0.0698, abs=1e-4)


def test_the_report_says_what_an_untestable_precondition_measured_and_keeps_table_rows_whole(tmp_path):
    records = [{"variant": v, "seed": s, "f_attn": f} for v, fs in (("baseline", [0.03, 0.031]), ("g1", [0.02, 0.021]))
               for s, f in enumerate(fs)]
    path = write_report(tmp_path, "T", "gatelab reproduce x", records, {"f_attn": "F-Attn"}, [CLAIM], ["a note"],
                        ["- a setting"])
    text = path.read_text()
    assert ("**untestable here** (precondition: a sink in the baseline, f_attn of baseline ≥ 0.07; measured 0.0305)"
            in text)
    assert "- a sink in the baseline: f_attn of baseline at least 0.07 (twice uniform attention)" in text
    assert_table_rows_whole(text)


def assert_table_rows_whole(text: str) -> None:
    """Every markdown table row is one line: a line inside a table starts and ends with '|'."""
    lines = text.splitlines()
    for prev, line in zip([""] + lines, lines, strict=False):
        if line.startswith("|") or prev.startswith("|") and line.strip():
            assert line.startswith("|") and line.endswith("|"), line


def test_spikes_are_losses_above_one_and_a_half_times_the_running_average():
    flat = [2.0] * 30
    assert count_spikes(flat) == 0
    spiky = flat[:20] + [3.5] + flat[:9]
    assert count_spikes(spiky) == 1
    assert count_spikes([2.0] * 5 + [9.0] + [2.0] * 5) == 0   # within the first 10 steps: not counted


@pytest.mark.parametrize("name", ["gated-attention", "quantizable", "lr-stability", "channel-gates"])
def test_reproduce_runs_end_to_end_in_smoke_mode(name, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GATELAB_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("COLUMNS", "60")   # a narrow console must not split the printed table rows
    data = write_corpus(tmp_path / "corpus", "the cat sat on the mat and the dog ate the log today\n" * 80)
    out = tmp_path / name
    assert main(["reproduce", name, "--smoke", "--seeds", "2", "--data", str(data), "--out", str(out),
                 "--no-progress"]) == 0
    report = (out / "report.md").read_text()
    assert "## Claims" in report and "Smoke mode" in report
    claims = [line for line in report.split("## Claims")[1].splitlines() if line.startswith("| ") and "**" in line]
    verdicts = [re.search(r"\*\*(reproduced|not reproduced|inconclusive|untestable here)\*\*", c) for c in claims]
    assert len(claims) >= 6 and all(verdicts)
    # a 4-step model has no sink, no outliers and no spikes: the claims that need them are untestable here, with
    # what was measured; claims without a precondition (perplexity, final loss) get an ordinary verdict
    assert "**untestable here** (" in report and "Preconditions" in report
    assert {v[1] for v in verdicts} - {"untestable here"}   # the measured-effect rows always get a verdict
    assert_table_rows_whole(report)
    assert_table_rows_whole(capsys.readouterr().out)
    records = json.loads((out / "records.json").read_text())
    assert len({r["seed"] for r in records}) == 2
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/result.json")}
    assert main(["reproduce", name, "--smoke", "--seeds", "2", "--data", str(data), "--out", str(out),
                 "--no-progress"]) == 0   # resumes: nothing retrained
    assert stamps == {p: p.stat().st_mtime_ns for p in out.glob("runs/*/result.json")}


ETT = next((Path(d) for d in (os.environ.get("GATELAB_ETT_DIR"), Path(__file__).parents[1] / ".." / "shared" / "data"
                              / "ett") if d and (Path(d) / "ETTh1.csv").is_file()), None)


@pytest.mark.parametrize("name", ["lra-listops", "mamba-synthetic", "informer-ett"])
def test_the_task_reproductions_run_end_to_end_in_smoke_mode(name, tmp_path, monkeypatch):
    if name == "informer-ett":
        if ETT is None:
            pytest.skip("ETTh1.csv not found ($GATELAB_ETT_DIR or ../shared/data/ett)")
        monkeypatch.setenv("GATELAB_ETT_DIR", str(ETT))
    out = tmp_path / name
    argv = ["reproduce", name, "--smoke", "--seeds", "2", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    report = (out / "report.md").read_text()
    claims = [line for line in report.split("## Claims")[1].splitlines() if line.startswith("| ") and "**" in line]
    assert claims and all(re.search(r"\*\*(reproduced|not reproduced|inconclusive|untestable here)\*\*", c)
                          for c in claims)
    # a 4-step model learns nothing: every claim that needs a model that learned is untestable, saying why
    assert "**untestable here** (" in report and "Preconditions" in report
    assert_table_rows_whole(report)
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("**/runs/*/result.json")}
    assert stamps and main(argv) == 0   # resumes: nothing retrained
    assert stamps == {p: p.stat().st_mtime_ns for p in out.glob("**/runs/*/result.json")}
