"""``gatelab analyze`` end to end on a tiny trained run, and its trajectory over kept checkpoints."""
import json

import pytest

from gatelab.cli import main

from ..utils import write_corpus


def test_analyze_and_trajectory_of_a_small_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GATELAB_DATA", str(tmp_path / "data"))
    data = write_corpus(tmp_path / "corpus", "the cat sat on the mat and the dog ate the log\n" * 120)
    run = tmp_path / "run"
    assert main(["train", "--task", "lm", "--data", str(data), "--mixer", "gated_attn,gla", "--out", str(run),
                 "--no-progress", "--set", "model.d_model=16", "--set", "model.n_layers=2", "--set", "max_steps=6",
                 "--set", "eval_every=3", "--set", "lm.seq_len=16", "--set", "batch_size=4",
                 "--set", "checkpoint_every=3", "--set", "keep_checkpoints=true", "--set", "lm.bos=true"]) == 0
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-000003.safetensors",
                                                                       "step-000006.safetensors"]
    assert main(["analyze", str(run), "--eval-tokens", "512", "--bits", "8:8,4:8"]) == 0
    result = json.loads((run / "analysis" / "analysis.json").read_text())
    assert set(result["quantization"]) == {"float", "W8A8", "W4A8"}
    assert set(result["extrapolation"]) == {"as_trained", "ntk", "yarn"}   # the attention layer has RoPE
    assert set(result["extrapolation"]["ntk"]) == {"16", "32", "64", "128"}
    ext = result["extrapolation"]
    assert ext["ntk"]["16"] == ext["yarn"]["16"] == ext["as_trained"]["16"]   # factor 1: no scaling
    assert 0 <= result["f_attn"]["mean"] <= 1 and list(result["f_attn"]["per_layer"]) == ["0"]
    assert {"gate.probe", "forget_gate_probe", "output_gate_probe"} <= set(result["gate_score"]["per_kind"])
    assert not {"score_probe", "context_probe"} & set(result["gate_score"]["per_kind"])   # attention, not gates
    for name in ("analysis.md", "layers.png", "gates.png", "outliers.png", "extrapolation.png"):
        assert (run / "analysis" / name).stat().st_size > 0, name
    assert "F-Attn" in capsys.readouterr().out

    # by default analyze reads the tokens training evaluated on (here all of the test split): one model, one test
    # perplexity, in training's result, in the analysis and at the training length of the extrapolation curve
    assert main(["analyze", str(run), "--bits", "8:8", "--quant-scope", "linear"]) == 0
    result = json.loads((run / "analysis" / "analysis.json").read_text())
    trained = json.loads((run / "result.json").read_text())["final"]["test/ppl"]
    assert result["ppl"] == pytest.approx(trained, rel=1e-6)   # float32 sums over other batch sizes
    assert result["extrapolation"]["as_trained"]["16"] == pytest.approx(trained, rel=1e-6)
    assert result["eval"]["quant_scope"] == "linear"
    report = (run / "analysis" / "analysis.md").read_text()
    assert "so the point at the training length (16) is that perplexity" in report
    assert "perplexity W8A8 (linear scope)" in report

    assert main(["analyze", str(run), "--trajectory", "--eval-tokens", "512"]) == 0
    points = json.loads((run / "analysis" / "trajectory.json").read_text())
    assert [p["step"] for p in points] == [3, 6] and all(p["ppl"] > 1 for p in points)
    assert main(["analyze", str(run), "--bits", "8"]) == 2
