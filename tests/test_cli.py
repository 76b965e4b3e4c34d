import csv
import json

from gatelab.cli import main


def test_mixers_lists_every_key(capsys):
    assert main(["mixers"]) == 0
    out = capsys.readouterr().out
    assert "gated_attn" in out and "gla" in out and "attn" in out


def test_compare_quick_end_to_end_and_resume(tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", "--quick", "--out", str(out), "--no-progress"]) == 0
    for name in ("results.csv", "summary.csv", "report.md", "accuracy.png", "recall_vs_state.png"):
        assert (out / name).stat().st_size > 0, name
    with open(out / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["mixer"] for r in rows} == {"attn", "gla"} and len(rows) == 4
    assert "report:" in capsys.readouterr().out
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/result.json")}
    assert main(["compare", "--quick", "--out", str(out), "--no-progress"]) == 0
    assert stamps == {p: p.stat().st_mtime_ns for p in out.glob("runs/*/result.json")}


def test_train_writes_run_folder(tmp_path):
    out = tmp_path / "run"
    code = main(["train", "--task", "mqar", "--mixer", "gated_attn", "--out", str(out), "--no-progress",
                 "--set", "model.d_model=16", "--set", "max_steps=5", "--set", "eval_every=5",
                 "--set", "mqar.train_examples=64", "--set", "mqar.test_examples=16", "--set", "mqar.vocab_size=128"])
    assert code == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model"]["mixer"] == "gated_attn" and cfg["model"]["d_model"] == 16
    assert (out / "model" / "model.safetensors").exists()


def test_bad_input_is_reported_not_raised(tmp_path, capsys):
    assert main(["train", "--mixer", "gated_atn", "--out", str(tmp_path / "x")]) == 2
    assert "registered token mixers" in capsys.readouterr().out
    assert main(["train", "--set", "model.d_modle=3", "--out", str(tmp_path / "y")]) == 2
    assert "valid keys" in capsys.readouterr().out


def test_compare_every_mixer_and_a_hybrid_in_smoke_mode(tmp_path):
    from gatelab.registry import MIXERS

    out = tmp_path / "all"
    mixers = ",".join(MIXERS.names()) + ",gdn:gated_attn=1:1"
    code = main(["compare", "--quick", "--mixers", mixers, "--seq-lens", "16", "--steps", "2", "--out", str(out),
                 "--no-progress", "--set", "model.n_heads=2"])
    assert code == 0
    with open(out / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["mixer"] for r in rows} == set(MIXERS.names()) | {"gdn:gated_attn=1:1"}
    assert (out / "recall_vs_state.png").stat().st_size > 0


def test_train_hybrid_ratio(tmp_path):
    out = tmp_path / "hyb"
    assert main(["train", "--hybrid", "gdn:gated_attn=3:1", "--out", str(out), "--no-progress",
                 "--set", "model.n_layers=4", "--set", "model.d_model=16", "--set", "max_steps=2",
                 "--set", "eval_every=2", "--set", "mqar.train_examples=32", "--set", "mqar.test_examples=8",
                 "--set", "mqar.vocab_size=128"]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model"]["mixer"] == "gdn:gated_attn=3:1"


def test_train_lm_on_a_local_folder(tmp_path, capsys):
    data = tmp_path / "corpus"
    data.mkdir()
    for split in ("train", "valid", "test"):
        (data / f"{split}.txt").write_text("a b c a b c d\n" * 50)
    out = tmp_path / "lm"
    assert main(["train", "--task", "lm", "--data", str(data), "--out", str(out), "--no-progress",
                 "--set", "model.d_model=16", "--set", "model.n_layers=2", "--set", "max_steps=3",
                 "--set", "eval_every=3", "--set", "lm.seq_len=8", "--set", "batch_size=4"]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["task"] == "lm" and cfg["model"]["channel"] == "swiglu" and cfg["model"]["vocab_size"] == 6
    assert "valid/ppl" in capsys.readouterr().out


def test_train_resume_from_the_command_line(tmp_path):
    out = tmp_path / "r"
    common = ["--out", str(out), "--no-progress"]
    assert main(["train", *common, "--set", "model.d_model=16", "--set", "max_steps=4", "--set", "eval_every=2",
                 "--set", "checkpoint_every=2", "--set", "mqar.train_examples=64", "--set", "mqar.test_examples=16",
                 "--set", "mqar.vocab_size=128"]) == 0
    assert main(["train", "--resume", *common]) == 0
    assert main(["train", "--resume", "--no-progress"]) == 2
