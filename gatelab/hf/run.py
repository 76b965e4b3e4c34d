"""Run folders <-> Hugging Face models: a finished run keeps its model in ``<run>/model/`` (``config.json`` and
``model.safetensors`` from ``save_pretrained``, plus the tokenizer as ``gatelab_tokenizer.json``)."""
from __future__ import annotations

import contextlib
import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from transformers.utils import SAFE_WEIGHTS_NAME
from transformers.utils import logging as hf_logging

from ..config import ConfigError, read_json_object
from ..models.lm import DecoderLM
from ..tasks.text.tokenizers import Tokenizer, fingerprint, tokenizer_from_dict
from .configuration import GatelabConfig
from .modeling import GatelabForCausalLM

MODEL_DIR = "model"
TOKENIZER_FILE = "gatelab_tokenizer.json"


@contextlib.contextmanager
def quiet_transformers():
    """No progress bars from transformers while saving or loading one small model."""
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def to_hf(model: DecoderLM, tokenizer: Tokenizer | None = None) -> GatelabForCausalLM:
    """A transformers model with the weights of ``model``, in their dtype (and the tokenizer's fingerprint in its
    config)."""
    config = GatelabConfig.from_model_config(model.config, fingerprint(tokenizer) if tokenizer else "")
    hf = GatelabForCausalLM(config).to(next(model.parameters()).dtype)
    hf.model.load_state_dict(model.state_dict())
    return hf


def save_run_model(model: DecoderLM, path: str | Path, tokenizer: Tokenizer | None = None) -> Path:
    """``save_pretrained`` the model (safetensors) into ``path``, with the tokenizer beside it."""
    path = Path(path)
    with quiet_transformers():
        to_hf(model, tokenizer).save_pretrained(path)
    if tokenizer is not None:
        (path / TOKENIZER_FILE).write_text(json.dumps(tokenizer.to_dict()))
    return path


def _read_json(file: Path) -> dict:
    """The JSON object in ``file``; a missing, truncated or non-JSON file is a ConfigError that names it."""
    if not file.is_file():
        raise ConfigError(f"{file} is missing: the model folder is incomplete (a run killed while saving?)")
    return read_json_object(file, ": truncated or not written by gatelab")


def _read_config(file: Path) -> GatelabConfig:
    data = _read_json(file)
    if data.get("model_type") != GatelabConfig.model_type:
        raise ConfigError(f"{file} is not a saved gatelab model (model_type {data.get('model_type')!r}); a run folder "
                          f"keeps its model in {MODEL_DIR}/, written when the run finishes")
    if not isinstance(data.get("gatelab_model"), dict):
        raise ConfigError(f"{file}: gatelab_model must be an object with the fields of gatelab.models.ModelConfig")
    try:
        return GatelabConfig.from_dict(data)
    except ConfigError as e:
        raise ConfigError(f"{file}: {e}") from None


def _check_weights(file: Path, config: GatelabConfig) -> None:
    """Refuse a missing, truncated or corrupt ``model.safetensors``, or one whose tensors are not the ones the
    config's model has (transformers would load it with fresh random weights in place of the missing ones)."""
    if not file.is_file():
        raise ConfigError(f"{file} is missing: the model folder is incomplete (a run killed while saving?)")
    try:
        with safe_open(file, framework="pt") as f:
            names = f.keys()
            shapes = {key: tuple(f.get_slice(key).get_shape()) for key in names}
    except (SafetensorError, OSError) as e:
        raise ConfigError(f"{file} is not a readable safetensors file ({e}): truncated or corrupt") from None
    with torch.device("meta"):
        meta = GatelabForCausalLM(config)
    expected = {key: tuple(value.shape) for key, value in meta.state_dict().items()}
    problems = {
        "missing": sorted(set(expected) - set(shapes) - set(meta._tied_weights_keys)),
        "unexpected": sorted(set(shapes) - set(expected)),
        "of other shapes": sorted(k for k in set(shapes) & set(expected) if shapes[k] != expected[k]),
    }
    if any(problems.values()):
        found = "; ".join(f"{what}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
                          for what, keys in problems.items() if keys)
        raise ConfigError(f"{file} does not hold the weights of the model its config.json describes (another "
                          f"architecture?); tensors {found}")


def read_tokenizer(file: Path, config: GatelabConfig) -> Tokenizer:
    """The tokenizer saved beside a model (``gatelab_tokenizer.json``), refused if its fingerprint differs from the
    one the model's config records."""
    data = _read_json(file)
    try:
        tokenizer = tokenizer_from_dict(data)
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigError(f"{file} is not a gatelab tokenizer: {e}") from None
    expected = config.tokenizer_fingerprint
    if expected and expected != fingerprint(tokenizer):
        raise ConfigError(f"tokenizer mismatch in {file.parent}: the model was trained with tokenizer {expected}, "
                          f"but {TOKENIZER_FILE} holds {fingerprint(tokenizer)}")
    return tokenizer


def saved_model(path: str | Path) -> tuple[Path, GatelabConfig]:
    """The folder holding the saved model of a run folder (its ``model/``) or of a saved model folder, and the
    model's config, with its ``model.safetensors`` checked against that config (names and shapes). A missing,
    truncated or foreign file is a ConfigError that names it."""
    path = Path(path)
    if not path.is_dir():
        raise ConfigError(f"no saved model in {path}: not a folder")
    folder = path / MODEL_DIR if (path / MODEL_DIR).is_dir() else path
    if folder == path and (path / "model.safetensors").is_file() and (path / "result.json").is_file():
        task = _read_json(path / "config.json").get("task", "?")
        raise ConfigError(f"{path} is a {task} run: its model is a classifier or forecaster (model.safetensors), not "
                          "a language model, so it cannot be loaded as one (generate and analyze take lm runs)")
    if not (folder / "config.json").exists() and folder == path:
        raise ConfigError(f"no saved model in {path}: expected {path / MODEL_DIR}/config.json "
                          "(written when a run finishes) or a folder written by save_pretrained")
    config = _read_config(folder / "config.json")
    _check_weights(folder / SAFE_WEIGHTS_NAME, config)
    return folder, config


def load_run(path: str | Path) -> tuple[GatelabForCausalLM, Tokenizer | None]:
    """The model and tokenizer of a run folder (or of a saved model folder), loaded offline. A missing, truncated or
    foreign config.json, model.safetensors or tokenizer file is a ConfigError that names the file, and so is a
    tokenizer whose fingerprint differs from the one recorded in the model's config."""
    folder, config = saved_model(path)
    with quiet_transformers():
        model = GatelabForCausalLM.from_pretrained(folder, config=config, local_files_only=True)
    tokenizer = read_tokenizer(folder / TOKENIZER_FILE, config) if (folder / TOKENIZER_FILE).exists() else None
    return model.eval(), tokenizer


__all__ = ["load_run", "read_tokenizer", "save_run_model", "saved_model", "to_hf"]
