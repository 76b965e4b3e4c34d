"""Loading a run folder (gatelab.hf.load_run): a model folder that a kill left half-written, a foreign file or a
mismatched tokenizer is a ConfigError that names the file."""
import re

import pytest

from gatelab.config import ConfigError
from gatelab.hf import load_run, save_run_model
from gatelab.tasks.text import ByteTokenizer, WordTokenizer
from tests.hf.test_hf import small


def test_a_tokenizer_that_does_not_match_the_model_is_refused(tmp_path):
    tok = WordTokenizer.train("a b c\n")
    save_run_model(small("attn"), tmp_path, tok)
    model, loaded_tok = load_run(tmp_path)
    assert loaded_tok.vocab == tok.vocab
    (tmp_path / "gatelab_tokenizer.json").write_text(
        '{"kind": "word", "vocab": ["<eos>", "<unk>", "a", "b", "c", "d"]}')
    with pytest.raises(ConfigError, match="tokenizer mismatch"):
        load_run(tmp_path)
    with pytest.raises(ConfigError, match="no saved model"):
        load_run(tmp_path / "missing")


def _cut(file, keep):
    file.write_bytes(file.read_bytes()[:keep(len(file.read_bytes()))])


HALF_WRITTEN = {   # what a kill while saving (or a foreign file) leaves, and the file the error must name
    "no weights": ("model.safetensors", lambda model: (model / "model.safetensors").unlink()),
    "empty weights": ("model.safetensors", lambda model: _cut(model / "model.safetensors", lambda n: 0)),
    "weights cut in the header": ("model.safetensors", lambda model: _cut(model / "model.safetensors", lambda n: 40)),
    "weights cut in the data": ("model.safetensors", lambda model: _cut(model / "model.safetensors", lambda n: n - 8)),
    "no config": ("config.json", lambda model: (model / "config.json").unlink()),
    "config cut": ("config.json", lambda model: _cut(model / "config.json", lambda n: n // 2)),
    "config not utf-8": ("config.json", lambda model: (model / "config.json").write_bytes(b'{"a": "\xe9"}')),
    "config of another library": ("config.json",
                                  lambda model: (model / "config.json").write_text('{"model_type": "llama"}')),
    "config without a model": ("config.json",
                               lambda model: (model / "config.json").write_text('{"model_type": "gatelab"}')),
    "config of another mixer": ("model.safetensors", lambda model: (model / "config.json").write_text(
        (model / "config.json").read_text().replace('"mixer": "attn"', '"mixer": "gla"'))),
    "tokenizer cut": ("gatelab_tokenizer.json", lambda model: _cut(model / "gatelab_tokenizer.json", lambda n: 5)),
}


@pytest.mark.parametrize("case", HALF_WRITTEN)
def test_a_half_written_or_foreign_model_folder_is_a_config_error_naming_the_file(tmp_path, case):
    """Loading a run whose model folder a kill left incomplete raises ConfigError naming the file, never a raw
    SafetensorError/OSError/JSONDecodeError, and never loads random weights in place of missing ones."""
    name, damage = HALF_WRITTEN[case]
    save_run_model(small("attn"), tmp_path / "model", ByteTokenizer())
    damage(tmp_path / "model")
    with pytest.raises(ConfigError, match=re.escape(str(tmp_path / "model" / name))):
        load_run(tmp_path)


def test_a_run_folder_without_its_model_is_a_config_error(tmp_path):
    (tmp_path / "config.json").write_text('{"task": "lm"}')          # a run's own config, killed before saving
    with pytest.raises(ConfigError, match=r"not a saved gatelab model .* model/"):
        load_run(tmp_path)
