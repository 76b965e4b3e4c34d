"""``gatelab retrofit-gate`` end to end on a tiny lm run: model folders, both fine-tunes as ordinary runs (reused on
a second call), measurements on the same windows, report and results; and its bad inputs."""
import json

import pytest
import torch

from gatelab.cli import main
from gatelab.config import ConfigError
from gatelab.models.lm import ModelConfig
from gatelab.pretrained.retrofit import retrofit_gate
from gatelab.pretrained.retrofit_run import load_source, resolve_config, write_model
from gatelab.train.config import LMTaskConfig, TrainConfig
from gatelab.train.loop import train

from ..utils import rel_rms, write_corpus
from .tiny import TEXT as TINY_TEXT
from .tiny import save_tiny, tiny_model

TEXT = "the cat sat on the mat\nthe dog ate the log\na bird sang in the tree\n" * 30


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A finished lm run of a 2-layer attn model (d_model 32, GQA, QK-norm) on a tiny local corpus."""
    root = tmp_path_factory.mktemp("retrofit")
    data = write_corpus(root / "corpus", TEXT)
    cfg = TrainConfig(task="lm", lm=LMTaskConfig(data=str(data), seq_len=16),
                      model=ModelConfig(d_model=32, n_layers=2, n_heads=4, mixer="attn",
                                        mixer_options={"attn": {"n_kv_heads": 2, "qk_norm": True}}),
                      batch_size=4, max_steps=3, eval_every=3)
    train(cfg, root / "run", progress=False)
    return root / "run"


def retrofit(run, out, *extra):
    return main(["retrofit-gate", str(run), "--steps", "2", "--batch-size", "2", "--eval-tokens", "64",
                 "--out", str(out), "--no-progress", *extra])


def test_end_to_end_and_reuse(tiny_run, tmp_path, capsys):
    out = tmp_path / "retrofit"
    assert retrofit(tiny_run, out) == 0
    text = capsys.readouterr().out
    assert "G1 gate retrofit" in text and "gated fine-tune" in text
    results = json.loads((out / "results.json").read_text())
    assert results["identity"]["bit_identical"] and results["identity"]["max_abs_logit_diff"] == 0.0
    assert [r["variant"] for r in results["records"]] == ["source (before)", "gated, step 0", "ungated fine-tune",
                                                          "gated fine-tune"]
    before, step0, ungated, gated = results["records"]
    assert before["ppl"] == step0["ppl"] and before["f_attn"] == step0["f_attn"]   # the same model at step 0
    assert step0["gate_score"] == 0.5 and before["gate_score"] is None and 0 < gated["gate_score"] < 1
    assert gated["ppl"] != step0["ppl"] and ungated["ppl"] != before["ppl"]          # both arms trained
    assert results["config"]["seq_len"] == 16                              # the source run's
    assert results["params"]["gated"] == results["params"]["source"] + 2 * 32 * 32
    assert {c["metric"] for c in results["claims"]} >= {"f_attn", "m_act", "w8a8_rel_gap", "ppl"}
    assert all(c["verdict"] in ("untestable here", "inconclusive") for c in results["claims"])   # one seed
    for arm in ("ungated", "gated"):
        run = json.loads((out / "runs" / f"{arm}-s0" / "config.json").read_text())
        assert run["init_from"].endswith(f"models/{arm}") and run["max_steps"] == 2 and run["seed"] == 0
        assert run["lm"]["tokenizer"] == "model"
    assert (out / "report.md").is_file() and (out / "models" / "gated" / "model.safetensors").is_file()
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/result.json")}
    assert retrofit(tiny_run, out) == 0                                    # finished runs and measurements reused
    assert {p: p.stat().st_mtime_ns for p in out.glob("runs/*/result.json")} == stamps


def test_another_granularity_into_the_same_out_is_refused(tiny_run, tmp_path, capsys):
    source = load_source(tiny_run)
    folder = tmp_path / "gated"
    write_model(retrofit_gate(source.model), source.tokenizer, folder, overwrite=False)
    write_model(retrofit_gate(source.model), source.tokenizer, folder, overwrite=False)   # the same: kept
    headwise = retrofit_gate(source.model, "headwise")
    with pytest.raises(ConfigError, match="holds another model"):
        write_model(headwise, source.tokenizer, folder, overwrite=False)
    write_model(headwise, source.tokenizer, folder, overwrite=True)
    assert json.loads((folder / "config.json").read_text())["gatelab_model"]["mixer_options"]["gated_attn"][
        "gate_granularity"] == "headwise"
    assert not (tmp_path / "gated.staging").exists()


@pytest.mark.parametrize("args, message", [
    (["--steps", "0"], "--steps: 0 is out of range"),
    (["--lr", "nan"], "--lr: nan is out of range"),
    (["--batch-size", "-1"], "--batch-size: -1 is out of range"),
    (["--seq-len", "1"], "--seq-len: 1 is out of range"),
    (["--seq-len", "5000"], "--seq-len 5000 exceeds the source model's max_seq_len=4096"),
    (["--granularity", "tokenwise"], "invalid choice: 'tokenwise'"),
    (["--device", "gpu"], "--device 'gpu' is not a torch device"),
])
def test_bad_flags(tiny_run, tmp_path, capsys, args, message):
    assert retrofit(tiny_run, tmp_path / "out", *args) == 2
    captured = capsys.readouterr()
    assert message in captured.out + captured.err and "Traceback" not in captured.out + captured.err
    assert not (tmp_path / "out" / "runs").exists()


def test_a_source_without_attention_is_refused(tmp_path, capsys):
    data = write_corpus(tmp_path / "corpus", TEXT)
    cfg = TrainConfig(task="lm", lm=LMTaskConfig(data=str(data), seq_len=8),
                      model=ModelConfig(d_model=16, n_layers=1, n_heads=2, mixer="gla"), batch_size=2, max_steps=1,
                      eval_every=1)
    train(cfg, tmp_path / "gla", progress=False)
    assert retrofit(tmp_path / "gla", tmp_path / "out") == 2
    assert "has no attn layer to gate" in capsys.readouterr().out
    assert main(["retrofit-gate", str(tmp_path / "missing"), "--no-progress"]) == 2
    assert "no such file or folder" in capsys.readouterr().out


def test_a_hugging_face_source_is_converted_and_retrofitted_with_the_same_logits(tmp_path):
    hf = tiny_model()
    source = load_source(save_tiny(tmp_path / "hf", hf))
    assert source.tokenizer.kind == "hf" and source.lm is None and source.name == "hf"
    gated = retrofit_gate(source.model)
    assert gated.config.schedule() == ["gated_attn"] * 2
    ids = torch.tensor([source.tokenizer.encode(TINY_TEXT)[:40]])
    with torch.no_grad():
        assert torch.equal(gated(ids).logits, source.model(ids).logits)
        assert rel_rms(hf(ids).logits, gated(ids).logits) < 1e-5
    with pytest.raises(ConfigError, match="--seq-len 256 exceeds the source model's max_seq_len=64"):
        resolve_config(source, {"seq_len": None})              # the default length without a source run
    cfg = resolve_config(source, {"seq_len": 32, "bos": None})
    assert (cfg.data, cfg.bos) == ("ptb", False)


def test_the_packaged_pretrained_model_is_loaded_as_one(monkeypatch):
    """``smollm2`` names the packaged pretrained model, not a folder: it goes to ``load_pretrained``."""
    asked = []

    def fake_load(source):
        asked.append(source)
        raise ConfigError("stop here")

    monkeypatch.setattr("gatelab.pretrained.retrofit_run.load_pretrained", fake_load)
    with pytest.raises(ConfigError, match="stop here"):
        load_source("smollm2")
    assert asked == ["smollm2"]
