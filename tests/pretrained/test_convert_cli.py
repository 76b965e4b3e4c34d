"""``gatelab convert --hf PATH --to gatelab OUT``: a gatelab model folder that ``load_run`` and ``generate`` use, with
the original's logits and tokenizer; OUT is written whole or not at all."""
import json
import os

import pytest
import torch

from gatelab.cli import main
from tests.pretrained.tiny import save_tiny, tiny_model


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("tiny-llama"))


def convert(*args):
    return main(["convert", "--to", "gatelab", *map(str, args)])


def test_convert_writes_a_gatelab_model_with_the_same_logits_and_tokenizer(folder, tmp_path, capsys):
    from gatelab.hf import load_run
    from gatelab.tasks.text import bos_id

    out = tmp_path / "converted"
    assert convert("--hf", folder, out) == 0
    printed = capsys.readouterr().out
    assert "LlamaForCausalLM" in printed and "logits max |diff|" in printed
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "conversion.json", "gatelab_tokenizer.json",
                                                     "generation_config.json", "model.safetensors"]
    assert [p.name for p in tmp_path.iterdir()] == ["converted"]                       # no temporary left
    umask = os.umask(0)
    os.umask(umask)
    assert {p.stat().st_mode & 0o777 for p in out.iterdir()} == {0o666 & ~umask}
    assert out.stat().st_mode & 0o777 == 0o777 & ~umask
    record = json.loads((out / "conversion.json").read_text())
    assert record["architecture"] == "LlamaForCausalLM" and record["logits_relative_rms_diff"] < 1e-5
    model, tok = load_run(out)
    assert tok.kind == "hf" and bos_id(tok) == 0 and tok.vocab_size == 300
    original = tiny_model()
    x = torch.tensor([tok.encode("The capital of France is Paris.")])
    torch.testing.assert_close(model(x).logits, original(x).logits, atol=1e-4, rtol=1e-5)


def test_generate_continues_a_prompt_with_the_converted_model(folder, tmp_path, capsys):
    from transformers import AutoTokenizer

    out = tmp_path / "converted"
    assert convert("--hf", folder, out) == 0
    capsys.readouterr()
    assert main(["generate", "--run", str(out), "--prompt", "The capital of", "--max-new-tokens", "8"]) == 0
    printed = capsys.readouterr().out
    tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    prompt = torch.tensor([tok.encode("The capital of", add_special_tokens=False)])
    theirs = tiny_model().generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=8,
                                   do_sample=False, pad_token_id=0)
    assert printed.rstrip("\n") == "The capital of" + tok.decode(theirs[0, prompt.shape[1]:])


def test_out_is_refused_when_it_exists_unless_overwrite(folder, tmp_path, capsys):
    out = tmp_path / "converted"
    assert convert("--hf", folder, out) == 0
    stamp = (out / "model.safetensors").stat().st_mtime_ns
    assert convert("--hf", folder, out) == 2
    assert "exists; pass --overwrite to replace it" in capsys.readouterr().out
    assert convert("--hf", folder, out, "--overwrite") == 0
    assert (out / "model.safetensors").stat().st_mtime_ns != stamp
    assert sorted(p.name for p in tmp_path.iterdir()) == ["converted"]
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    assert convert("--hf", folder, other, "--overwrite") == 2
    assert "not a gatelab model folder" in capsys.readouterr().out and (other / "keep.txt").exists()


def test_unsupported_architectures_and_non_causal_folders_leave_nothing(tmp_path, capsys):
    from transformers import GPT2Config, GPT2LMHeadModel

    gpt2 = save_tiny(tmp_path / "gpt2", GPT2LMHeadModel(GPT2Config(vocab_size=300, n_embd=32, n_layer=1, n_head=2,
                                                                   n_positions=32)))
    assert convert("--hf", gpt2, tmp_path / "out") == 2
    printed = capsys.readouterr().out
    assert "GPT2LMHeadModel is not supported; supported architectures: LlamaForCausalLM, MistralForCausalLM, " \
           "Qwen2ForCausalLM, Qwen3ForCausalLM" in printed and "Traceback" not in printed
    config = json.loads((gpt2 / "config.json").read_text())
    config["architectures"] = ["GPT2ForSequenceClassification"]
    (gpt2 / "config.json").write_text(json.dumps(config))
    assert convert("--hf", gpt2, tmp_path / "out") == 2
    assert "not causal language models" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gpt2"]


def test_a_failure_while_writing_leaves_nothing_half_written(folder, tmp_path, monkeypatch, capsys):
    import gatelab.hf

    def fail(model, path, tokenizer=None):
        (path / "config.json").write_text("{}")
        raise OSError("disk full")

    monkeypatch.setattr(gatelab.hf, "save_run_model", fail)
    assert convert("--hf", folder, tmp_path / "out") == 2
    assert "disk full" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []


def test_a_failed_overwrite_keeps_the_old_folder(folder, tmp_path, monkeypatch):
    import gatelab.hf

    out = tmp_path / "converted"
    assert convert("--hf", folder, out) == 0
    before = (out / "model.safetensors").read_bytes()

    def fail(model, path, tokenizer=None):
        raise OSError("disk full")

    monkeypatch.setattr(gatelab.hf, "save_run_model", fail)
    assert convert("--hf", folder, out, "--overwrite") == 2
    assert (out / "model.safetensors").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["converted"]
