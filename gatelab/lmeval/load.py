"""The model lm-eval evaluates: a gatelab run folder, a saved gatelab model folder, a Hugging Face causal-LM folder
or ``smollm2``, with its codec and the longest window it reads."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from ..config import ConfigError
from .codec import GatelabCodec, HFCodec

HF_LENGTH_FIELDS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")
HF_DEFAULT_LENGTH = 2048    # lm-eval's HFLM default for a config that names no length


@dataclass
class EvalModel:
    """``model(input_ids [B, T]) -> .logits [B, T, vocab]`` (eval mode, causal), its codec, ``max_length``: the
    longest window lm-eval may give it (``limit``: the most it accepts), and a name for reports."""

    model: nn.Module
    codec: GatelabCodec | HFCodec
    max_length: int
    limit: int
    name: str


def is_gatelab_folder(path: Path) -> bool:
    """A run folder (``model/`` inside) or a folder ``save_run_model`` wrote (``model_type: gatelab``)."""
    def gatelab_config(file: Path) -> bool:
        try:
            return json.loads(file.read_text(encoding="utf-8")).get("model_type") == "gatelab"
        except (OSError, ValueError, AttributeError):
            return False

    return gatelab_config(path / "model" / "config.json") or gatelab_config(path / "config.json")


def trained_length(path: Path) -> int | None:
    """The window an lm run folder was trained on (``lm.seq_len`` of its config), None for a bare model folder."""
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if config.get("model_type") == "gatelab" or not isinstance(config.get("lm"), dict):
        return None
    return config["lm"].get("seq_len")


def load_gatelab(path: Path) -> EvalModel:
    """A gatelab model with its own tokenizer. Windows: the run's training length (``lm.seq_len``) for a run
    folder, the model's ``max_seq_len`` for a bare model folder."""
    from ..hf import load_run

    model, tokenizer = load_run(path)
    if tokenizer is None:
        raise ConfigError(f"{path} has no tokenizer (gatelab_tokenizer.json): lm-eval needs a language model's "
                          "tokenizer (an MQAR run has none)")
    limit = model.model.config.max_seq_len
    return EvalModel(model, GatelabCodec(tokenizer), min(trained_length(path) or limit, limit), limit,
                     path.resolve().name)


def load_hf(source: str) -> EvalModel:
    """A Hugging Face causal LM with its own tokenizer, through ``gatelab.pretrained.load_pretrained`` (``smollm2``,
    a folder with ``config.json`` + safetensors, a folder holding one ``.gguf``, or a ``.gguf`` file)."""
    from ..pretrained.source import load_pretrained

    loaded = load_pretrained(source)
    limit = next((v for f in HF_LENGTH_FIELDS if isinstance(v := getattr(loaded.model.config, f, None), int)),
                 HF_DEFAULT_LENGTH)
    return EvalModel(loaded.model, HFCodec(loaded.tokenizer), limit, limit, loaded.name)


def load_eval_model(source: str | Path, max_length: int | None = None) -> EvalModel:
    """The model of ``source`` (a gatelab run or model folder with its gatelab tokenizer, else whatever
    ``load_pretrained`` takes), reading windows of ``max_length`` tokens (default: its own length; more than the
    model accepts is a ConfigError)."""
    path = Path(source)
    loaded = load_gatelab(path) if path.is_dir() and is_gatelab_folder(path) else load_hf(str(source))
    if max_length is not None:
        set_length(loaded, max_length)
    return loaded


def set_length(loaded: EvalModel, max_length: int) -> None:
    """Read windows of ``max_length`` tokens, at most what the model accepts (a ConfigError otherwise)."""
    if not 1 <= max_length <= loaded.limit:
        raise ConfigError(f"--max-length {max_length}: {loaded.name} reads windows of 1 to {loaded.limit} tokens")
    loaded.max_length = max_length


def model_info(loaded: EvalModel) -> dict[str, Any]:
    """What the results file records about the model."""
    return {"model_name": loaded.name, "tokenizer": loaded.codec.name, "max_length": loaded.max_length,
            "num_params": sum(p.numel() for p in loaded.model.parameters())}
