"""``gatelab linearize``: linearized model folders, LoRA fine-tuning runs, the recovered fraction and the decoding
state, end to end on a tiny model."""
import json

import pytest
import torch
from safetensors.torch import load_file

from gatelab.cli import main
from gatelab.hf import save_run_model
from gatelab.models.lm import DecoderLM, ModelConfig
from gatelab.tasks.text.tokenizers import WordTokenizer
from tests.pretrained.tiny import TEXT, save_tiny
from tests.utils import write_corpus

WORDS = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "to", "red", "door", "while", "birds", "sang"]


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A tiny attention model folder with its word tokenizer, and a text folder it is tuned and tested on."""
    root = tmp_path_factory.mktemp("linearize")
    g = torch.Generator().manual_seed(0)
    lines = [" ".join(WORDS[i] for i in torch.randint(0, len(WORDS), (12,), generator=g)) for _ in range(120)]
    data = root / "text"
    data.mkdir()
    for split, part in (("train", lines[:80]), ("valid", lines[80:100]), ("test", lines[100:])):
        (data / f"{split}.txt").write_text("\n".join(part) + "\n")
    tokenizer = WordTokenizer.train("\n".join(lines))
    cfg = ModelConfig(vocab_size=tokenizer.vocab_size, d_model=32, n_layers=2, n_heads=4,
                      mixer_options={"attn": {"n_kv_heads": 2}})
    save_run_model(DecoderLM(cfg), root / "teacher", tokenizer)
    return root


def test_linearize_tunes_each_target_and_reports_recovery(source, capsys):
    out = source / "out"
    code = main(["linearize", str(source / "teacher"), "--to", "liger,gla", "--data", str(source / "text"),
                 "--steps", "2", "--batch-size", "2", "--grad-accum", "2", "--seq-len", "16", "--window", "4",
                 "--contexts", "32,64", "--cloze-items", "12", "--out", str(out), "--no-progress"])
    assert code == 0, capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    teacher = results["teacher"]
    assert results["cloze"] == {"task": "ptb_lastword", "items": 12} and 0 <= teacher["cloze_acc"] <= 1
    assert teacher["state"][1]["state_bytes"] == 2 * teacher["state"][0]["state_bytes"]   # the KV cache grows
    kept = load_file(source / "teacher" / "model.safetensors")
    for to in ("liger", "gla"):
        r = results["targets"][to]
        assert r["steps"] == 2 and r["tokens"] == 2 * 2 * 16
        assert r["recovered"] == pytest.approx(teacher["test_ppl"] / r["test_ppl_tuned"])
        assert r["run_test_ppl"] == pytest.approx(r["test_ppl_tuned"], rel=1e-4)    # the run saw the same windows
        assert r["state"][0]["state_bytes"] == r["state"][1]["state_bytes"] > 0     # bounded by the window
        for suffix in ("", "_linearized"):
            ratio, acc = r[f"recovered_acc{suffix}"], r[f"cloze_acc{suffix}"]
            assert ratio is None if teacher["cloze_acc"] == 0 else ratio == pytest.approx(acc / teacher["cloze_acc"])
        linearized = load_file(out / "models" / to / "model.safetensors")
        assert all(torch.equal(linearized[k], v) for k, v in kept.items())
        run = json.loads((out / "runs" / to / "config.json").read_text())
        assert (run["tune"], run["lora"]["rank"], run["lora"]["alpha"], run["grad_accum"]) == ("lora", 8, 8.0, 2)
    assert "| liger | liger |" in (out / "report.md").read_text()
    assert "state bytes @ 64" in capsys.readouterr().out


@pytest.mark.parametrize(("argv", "message"), [
    (["--to", "liger,mamba"], "unknown target 'mamba'; choose from liger, gla, swa, linear_attn"),
    (["--to", "gla,gla"], "names a target twice"),
    (["--steps", "0"], "--steps: 0 is out of range"),
    (["--seq-len", "1"], "--seq-len: 1 is out of range"),
    (["--cloze-items", "2801"], "--cloze-items: 2801 is out of range"),
    (["--cloze-items", "-1"], "--cloze-items: -1 is out of range"),
    (["--batch-size", "8", "--grad-accum", "3"], "--batch-size 8 must split evenly into --grad-accum 3"),
])
def test_bad_flags_are_one_line_errors(source, capsys, argv, message):
    assert main(["linearize", str(source / "teacher"), *argv]) == 2
    assert message in "".join(capsys.readouterr())


def test_a_hugging_face_model_is_converted_then_linearized(tmp_path, capsys):
    """A transformers Llama (6 query heads, 2 kv heads) is converted into OUT/teacher, its windows start with its
    BOS token, and its grouped-query attention maps to the recurrence."""
    out = tmp_path / "out"
    code = main(["linearize", str(save_tiny(tmp_path / "hf")), "--to", "gla", "--data",
                 str(write_corpus(tmp_path / "text", TEXT * 3)), "--cloze-items", "0", "--steps", "1", "--batch-size",
                 "2", "--seq-len", "16", "--contexts", "16,64,128", "--out", str(out), "--no-progress"])
    assert code == 0, capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert results["bos"] and (out / "teacher" / "conversion.json").is_file()
    gla = results["targets"]["gla"]
    assert [s["context"] for s in gla["state"]] == [16, 64]             # 128 is past the model's 64 positions
    assert gla["state"][0]["state_bytes"] == gla["state"][1]["state_bytes"] == 2 * 6 * 8 * 8 * 4
    assert gla["steps"] == 1 and gla["recovered"] > 0


def test_a_teacher_converted_from_other_weights_is_not_reused(tmp_path, capsys):
    """OUT/teacher records the sha256 of the weights it was converted from: new weights at the same path are refused
    (naming --overwrite) instead of silently evaluating the old teacher, and --overwrite converts them again."""
    from tests.pretrained.tiny import tiny_model

    hf, out = tmp_path / "hf", tmp_path / "out"
    argv = ["linearize", str(hf), "--to", "swa", "--data", str(write_corpus(tmp_path / "text", TEXT * 3)),
            "--cloze-items", "0", "--steps", "1", "--batch-size", "2", "--seq-len", "16", "--contexts", "16", "--out",
            str(out), "--no-progress"]
    save_tiny(hf)
    assert main(argv) == 0, capsys.readouterr().out
    first = json.loads((out / "teacher" / "conversion.json").read_text())["weights_sha256"]
    save_tiny(hf, tiny_model(seed=1), tokenizer=False)
    assert main(argv) == 2
    message = capsys.readouterr().out
    assert "other weights" in message and "--overwrite" in message
    assert main([*argv, "--overwrite"]) == 0, capsys.readouterr().out
    assert json.loads((out / "teacher" / "conversion.json").read_text())["weights_sha256"] != first


def test_a_folder_that_is_not_a_model_is_refused(tmp_path, capsys):
    assert main(["linearize", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "has no config.json and no .gguf file: not a model folder" in capsys.readouterr().out
    assert not (tmp_path / "out").exists()


def test_a_diverged_fine_tuning_is_a_result(source, capsys):
    out = source / "diverged"
    argv = ["linearize", str(source / "teacher"), "--to", "gla", "--data", str(source / "text"), "--cloze-items", "0",
            "--steps", "3", "--batch-size", "2", "--seq-len", "16", "--lr", "1e30", "--contexts", "32", "--out",
            str(out), "--no-progress"]
    assert main(argv) == 0, capsys.readouterr().out
    gla = json.loads((out / "results.json").read_text())["targets"]["gla"]
    assert gla["diverged"] and "test_ppl_tuned" not in gla
    assert "| gla | liger |" in (out / "report.md").read_text() and "diverged at step" in capsys.readouterr().out
    assert main(argv) == 0                                    # read back, not trained again
    other = [*argv[:-1], "--steps", "2", "--lr", "1e-3"]
    assert main([*other, "--no-progress"]) == 2 and "holds a run of another configuration" in capsys.readouterr().out
    assert main([*other, "--overwrite"]) == 0
    gla = json.loads((out / "results.json").read_text())["targets"]["gla"]
    assert not gla["diverged"] and gla["steps"] == 2
