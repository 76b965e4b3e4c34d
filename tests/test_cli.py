import csv
import json
import re
from pathlib import Path

from gatelab import __version__
from gatelab.cli import default_run_folder, main
from gatelab.presets import preset, safe_name
from gatelab.train import TrainConfig

from .utils import write_corpus


def test_mixers_lists_every_key(capsys):
    assert main(["mixers"]) == 0
    out = capsys.readouterr().out
    assert "gated_attn" in out and "gla" in out and "attn" in out


def test_piped_tables_are_not_cut_at_80_columns(capsys):
    from gatelab.registry import MIXERS

    assert main(["mixers"]) == 0
    rows = capsys.readouterr().out.splitlines()
    for key in MIXERS.names():   # one line per mixer, with its whole class name, description and paper
        cls = MIXERS.get(key)
        assert any(cls.__name__ in row and cls.paper in row and cls.description in row for row in rows), key


def test_version_and_help(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"gatelab {__version__}"
    assert main(["install-data", "--help"]) == 0
    text = capsys.readouterr().out
    assert "[]" not in text and "gpt2, kjv, shakespeare" in text


def test_default_run_folders_carry_the_task_and_corpus_and_are_safe_file_names():
    def folder(*overrides: str) -> str:
        from gatelab.config import apply_overrides

        return str(default_run_folder(apply_overrides(TrainConfig(), list(overrides))))

    assert folder("model.mixer=gated_attn") == "runs/train-mqar-gated_attn-s0"
    assert folder("task=lm", "lm.data=ptb", "model.mixer=gated_attn", "seed=2") == "runs/train-lm-ptb-gated_attn-s2"
    assert folder("task=lm", "lm.data=/data/my corpus/", "model.mixer=gla") == "runs/train-lm-my_corpus-gla-s0"
    hybrid = folder("model.mixer=gdn:gated_attn=3:1", "model.n_layers=4")
    assert hybrid == "runs/train-mqar-gdn-gated_attn_3-1-s0"
    assert re.fullmatch(r"runs/[A-Za-z0-9._+-]+", folder("model.mixer=gla,gla,gla,attn", "model.n_layers=4"))
    assert safe_name("a:b=1:2,c/d e\\f*?") == "a-b_1-2+c_d_e_f__"


def test_compare_run_names_are_safe_file_names():
    grid = preset("quick")
    grid.mixers = ["gdn:gated_attn=1:1", "gla"]
    grid.base.model.n_layers = 2
    names = [run.name for run in grid.runs()]
    assert all(re.fullmatch(r"[A-Za-z0-9._+-]+", n) for n in names) and "gdn-gated_attn_1-1-d16-T16-s0-lr0.003" in names


def test_train_without_out_writes_a_folder_named_for_task_and_mixer(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--mixer", "gated_attn", "--no-progress", "--set", "model.d_model=16",
                 "--set", "max_steps=1", "--set", "eval_every=1", "--set", "mqar.train_examples=16",
                 "--set", "mqar.test_examples=8", "--set", "mqar.vocab_size=128"]) == 0
    assert [p.name for p in Path("runs").iterdir()] == ["train-mqar-gated_attn-s0"]


def test_compare_quick_end_to_end_and_resume(tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", "--quick", "--out", str(out), "--no-progress"]) == 0
    for name in ("results.csv", "summary.csv", "report.md", "accuracy.png", "recall_vs_state.png"):
        assert (out / name).stat().st_size > 0, name
    with open(out / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["mixer"] for r in rows} == {"attn", "gla"} and len(rows) == 4
    printed = capsys.readouterr().out
    assert "report:" in printed and "pipeline check" in printed   # chance-level accuracies are not a finding
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/result.json")}
    assert main(["compare", "--quick", "--out", str(out), "--no-progress"]) == 0
    assert stamps == {p: p.stat().st_mtime_ns for p in out.glob("runs/*/result.json")}


def test_compare_report_only_reports_the_finished_runs_and_trains_none(tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", "--quick", "--report-only", "--out", str(out), "--no-progress"]) == 2
    assert "nothing to report" in capsys.readouterr().out
    assert main(["compare", "--quick", "--mixers", "attn", "--out", str(out), "--no-progress"]) == 0
    assert main(["compare", "--quick", "--report-only", "--out", str(out), "--no-progress"]) == 0
    assert "2 of 4 runs finished" in capsys.readouterr().out
    assert sorted(p.parent.name for p in out.glob("runs/*/result.json")) == ["attn-d16-T16-s0-lr0.003",
                                                                              "attn-d16-T32-s0-lr0.003"]
    with open(out / "results.csv") as f:
        assert [r["mixer"] for r in csv.DictReader(f)] == ["attn", "attn"]
    assert "**Partial:** 2 of the grid's 4 runs" in (out / "report.md").read_text()


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
    causal = [k for k in MIXERS.names() if MIXERS.get(k).directions != "bidirectional"]  # MQAR trains a decoder
    mixers = ",".join(causal) + ",gdn:gated_attn=1:1"
    code = main(["compare", "--quick", "--mixers", mixers, "--seq-lens", "16", "--steps", "2", "--out", str(out),
                 "--no-progress", "--set", "model.n_heads=2"])
    assert code == 0
    with open(out / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["mixer"] for r in rows} == set(causal) | {"gdn:gated_attn=1:1"}
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
    data = write_corpus(tmp_path / "corpus", "a b c a b c d\n" * 50)
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


def test_compare_lm_reports_perplexity_of_parameter_matched_models(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GATELAB_DATA", str(tmp_path / "data"))
    data = write_corpus(tmp_path / "corpus", "the cat sat on the mat\nthe dog ate the log\n" * 40)
    out = tmp_path / "cmp"
    assert main(["compare", "--task", "lm", "--quick", "--data", str(data), "--mixers", "attn,gated_attn,gla",
                 "--steps", "4", "--set", "eval_every=2", "--set", "lm.seq_len=8", "--seq-lens", "8",
                 "--out", str(out), "--no-progress"]) == 0
    for name in ("results.csv", "summary.csv", "report.md", "perplexity.png", "learning_curves.png"):
        assert (out / name).stat().st_size > 0, name
    with open(out / "summary.csv") as f:
        rows = {r["mixer"]: r for r in csv.DictReader(f)}
    assert set(rows) == {"attn", "gated_attn", "gla"}
    params = [int(r["num_params"]) for r in rows.values()]
    assert max(params) - min(params) < 0.02 * min(params)   # matched through the SwiGLU width
    assert all(1 < float(r["test_ppl_mean"]) < 20 for r in rows.values())   # 9 word types + <eos> + <unk>
    assert "test ppl" in capsys.readouterr().out
    assert main(["compare", "--preset", "default", "--task", "lm", "--out", str(out)]) == 2
    assert "not lm" in capsys.readouterr().out
    assert main(["compare", "--data", "ptb", "--out", str(out)]) == 2


def test_generate_continues_a_prompt_from_a_run(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GATELAB_DATA", str(tmp_path / "data"))
    data = write_corpus(tmp_path / "corpus", "a b c d e f g h\n" * 100)
    out = tmp_path / "lm"
    assert main(["train", "--task", "lm", "--data", str(data), "--out", str(out), "--no-progress", "--mixer", "gla",
                 "--set", "model.d_model=16", "--set", "model.n_layers=2", "--set", "max_steps=60",
                 "--set", "eval_every=60", "--set", "lm.seq_len=16", "--set", "batch_size=8",
                 "--set", "optim.lr=0.01"]) == 0
    capsys.readouterr()
    assert main(["generate", "--run", str(out), "--prompt", "a b c", "--max-new-tokens", "5"]) == 0
    assert capsys.readouterr().out.split() == ["a", "b", "c", "d", "e", "f", "g", "h"]   # learned the cycle
    assert main(["generate", "--run", str(tmp_path / "nothing"), "--prompt", "a"]) == 2
    assert "no saved model" in capsys.readouterr().out


def test_a_time_budget_gives_each_mixer_its_own_step_count(tmp_path, monkeypatch):
    import gatelab.train.budget as budget

    monkeypatch.setattr(budget, "seconds_per_step", lambda cfg: 0.5 if cfg.model.mixer == "gla" else 0.25)
    out = tmp_path / "cmp"
    assert main(["compare", "--quick", "--budget-minutes", "0.05", "--out", str(out), "--no-progress"]) == 0
    with open(out / "results.csv") as f:
        steps = {r["mixer"]: int(r["steps"]) for r in csv.DictReader(f)}
    assert steps == {"attn": 12, "gla": 6}   # 3 s of training at 0.25 s and 0.5 s per step
    assert len(json.loads((out / "budget.json").read_text())) == 4   # two mixers x two lengths, measured once
    assert "a budget of 0.05 minutes" in (out / "report.md").read_text()
    assert main(["compare", "--quick", "--budget-minutes", "1", "--steps", "5", "--out", str(out)]) == 2
