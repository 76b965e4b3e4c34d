"""Run folders <-> Hugging Face models: a finished run keeps its model in ``<run>/model/`` (``config.json`` and
``model.safetensors`` from ``save_pretrained``, plus the tokenizer as ``gatelab_tokenizer.json``)."""
from __future__ import annotations

import contextlib
import json
from pathlib import Path

from transformers.utils import logging as hf_logging

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


def load_run(path: str | Path) -> tuple[GatelabForCausalLM, Tokenizer | None]:
    """The model and tokenizer of a run folder (or of a saved model folder), loaded offline. A tokenizer whose
    fingerprint differs from the one recorded in the model's config is refused."""
    path = Path(path)
    folder = path / MODEL_DIR if (path / MODEL_DIR / "config.json").exists() else path
    if not (folder / "config.json").exists():
        raise FileNotFoundError(f"no saved model in {path}: expected {path / MODEL_DIR}/config.json "
                                "(written when a run finishes) or a folder written by save_pretrained")
    with quiet_transformers():
        model = GatelabForCausalLM.from_pretrained(folder, local_files_only=True)
    tokenizer = None
    if (folder / TOKENIZER_FILE).exists():
        tokenizer = tokenizer_from_dict(json.loads((folder / TOKENIZER_FILE).read_text()))
        expected = model.config.tokenizer_fingerprint
        if expected and expected != fingerprint(tokenizer):
            raise ValueError(f"tokenizer mismatch in {folder}: the model was trained with tokenizer {expected}, "
                             f"but {TOKENIZER_FILE} holds {fingerprint(tokenizer)}")
    return model.eval(), tokenizer


__all__ = ["load_run", "save_run_model", "to_hf"]
