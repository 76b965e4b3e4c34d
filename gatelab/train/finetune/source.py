"""Where a fine-tuning run starts (``TrainConfig.init_from``): a saved gatelab model folder (``config.json`` +
``model.safetensors`` [+ ``gatelab_tokenizer.json``], written by ``save_run_model`` or ``save_pretrained``) or a
finished lm run folder (its ``model/``). The run's model config is the folder's, its weights are loaded before
step 0 (safetensors only), and the sha256 of the weights file is recorded in the run's config, so a finished run
is reused only when it started from the same weights."""
from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ...config import ConfigError, to_dict
from ...models.config import ModelConfig
from ..files import file_sha256

if TYPE_CHECKING:
    from ...hf.configuration import GatelabConfig
    from ...tasks.text.tokenizers import Tokenizer
    from ..config import TrainConfig

WEIGHTS = "model.safetensors"
TOKENIZER = "gatelab_tokenizer.json"
# model fields a fine-tuning run decides itself: the task's vocabulary and length (checked against the folder's),
# whether a learned initial state is added (train.tune=initial_state) and training-time dropout
RUN_FIELDS = ("vocab_size", "max_seq_len", "learned_initial_state", "dropout")


def _saved(init_from: str) -> tuple[Path, GatelabConfig]:
    from ...hf.run import saved_model

    try:
        return saved_model(init_from)
    except ConfigError as e:
        raise ConfigError(f"init_from={init_from!r}: {e}") from None


def source_folder(init_from: str) -> tuple[Path, ModelConfig]:
    """The folder holding the saved model of ``init_from`` and its model config, the weights checked against it
    (``gatelab.hf.run.saved_model``); anything else is a ConfigError that names init_from."""
    folder, config = _saved(init_from)
    return folder, config.model_config()


@functools.lru_cache(maxsize=16)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    return file_sha256(path)


def weights_sha256(folder: Path) -> str:
    """The sha256 of ``folder/model.safetensors`` (cached while the file's size and modification time stay)."""
    stat = (folder / WEIGHTS).stat()
    return _sha256(str((folder / WEIGHTS).resolve()), stat.st_size, stat.st_mtime_ns)


def check_given_model(given: ModelConfig, defaults: list[ModelConfig], source: ModelConfig, init_from: str) -> None:
    """A ``model`` set in the run's config besides ``init_from`` (any field that differs from its value in each of
    ``defaults``, other than ``RUN_FIELDS``) must agree with the folder's: a ConfigError names the fields that
    differ."""
    g, s, ds = to_dict(given), to_dict(source), [to_dict(d) for d in defaults]
    diff = [k for k in g if k not in RUN_FIELDS and all(g[k] != d[k] for d in ds) and g[k] != s[k]]
    if diff:
        shown = "; ".join(f"model.{k}: {g[k]!r} given, {s[k]!r} in the folder" for k in diff)
        raise ConfigError(f"init_from={init_from!r} fixes the model, and the model given differs from it ({shown}); "
                          "leave those fields unset (the folder's are used) or make them equal")


def resolve_init_from(cfg: TrainConfig, vocab_size: int | None, longest: int) -> TrainConfig:
    """``cfg`` with the model of ``init_from`` (vocabulary checked against the task's, ``max_seq_len`` long enough
    for the task, a learned initial state where ``tune=initial_state``) and the weights' sha256 in
    ``init_from_sha256``; a sha256 given that differs from the file's is a ConfigError."""
    folder, source = source_folder(cfg.init_from)
    defaults = [type(cfg).__dataclass_fields__["model"].default_factory(), ModelConfig()]   # TrainConfig's, the class's
    check_given_model(cfg.model, defaults, source, cfg.init_from)
    if vocab_size is not None and vocab_size != source.vocab_size:
        raise ConfigError(f"init_from={cfg.init_from!r} has a vocabulary of {source.vocab_size} ids, but the task's "
                          f"tokenizer has {vocab_size}: the embeddings belong to the tokenizer saved with the model; "
                          "set lm.tokenizer=model to use it")
    sha = weights_sha256(folder)
    if cfg.init_from_sha256 and cfg.init_from_sha256 != sha:
        raise ConfigError(f"init_from_sha256={cfg.init_from_sha256} but {folder / WEIGHTS} now has sha256 {sha}: the "
                          "starting weights changed; start a new run (or clear init_from_sha256 to take them)")
    if cfg.tune == "initial_state":
        check_recurrent(source, cfg.init_from)
    learned = source.learned_initial_state or cfg.tune == "initial_state"
    model = dataclasses.replace(source, max_seq_len=max(source.max_seq_len, longest), dropout=cfg.model.dropout,
                                learned_initial_state=learned)
    return dataclasses.replace(cfg, model=model, init_from_sha256=sha)


def check_recurrent(source: ModelConfig, init_from: str) -> None:
    """``tune=initial_state`` needs a layer whose mixer keeps a recurrent memory (``gatelab.models.initial_state``)."""
    from ...models.lm import DecoderLM

    try:
        with torch.device("meta"):
            DecoderLM(dataclasses.replace(source, learned_initial_state=True))
    except ConfigError:
        raise ConfigError(f"tune=initial_state learns the initial state of recurrent layers, but the model of "
                          f"init_from={init_from!r} (mixer {source.mixer!r}) has none (a KV cache has no learned "
                          "form); use tune=lora or tune=full") from None


def source_tokenizer(init_from: str) -> Tokenizer:
    """The tokenizer saved beside ``init_from``'s weights (``lm.tokenizer=model``), checked against the fingerprint
    the model's config records."""
    from ...hf.run import read_tokenizer

    folder, config = _saved(init_from)
    if not (folder / TOKENIZER).is_file():
        raise ConfigError(f"lm.tokenizer=model: init_from={init_from!r} has no {TOKENIZER} beside its weights; "
                          "choose the tokenizer the model was trained with (lm.tokenizer=word, byte, gpt2 or bpe)")
    return read_tokenizer(folder / TOKENIZER, config)


def check_source_tokenizer(init_from: str, tokenizer: Tokenizer) -> None:
    """The task's tokenizer must be the one the model was trained with, where the folder records it."""
    from ...tasks.text.tokenizers import fingerprint

    _, config = _saved(init_from)
    expected = config.tokenizer_fingerprint
    if expected and expected != fingerprint(tokenizer):
        raise ConfigError(f"init_from={init_from!r} was trained with tokenizer {expected}, but the task's "
                          f"{tokenizer.kind} tokenizer is {fingerprint(tokenizer)}: the embeddings belong to the "
                          "model's tokenizer; set lm.tokenizer=model to use it")


def load_source_weights(model: torch.nn.Module, init_from: str) -> None:
    """Copy the weights of ``init_from`` into ``model`` (built from the resolved config): every tensor must fit by
    name and shape; only a tied LM head (stored once, as the embedding) and a learned initial state the folder does
    not have yet (``tune=initial_state`` adds it, at its default) may be absent from the file."""
    from ..checkpoint import read_safetensors

    folder, _ = source_folder(init_from)
    tensors, _ = read_safetensors(folder / WEIGHTS)
    weights = {k.removeprefix("model."): v for k, v in tensors.items()}
    try:
        missing, unexpected = model.load_state_dict(weights, strict=False)
    except RuntimeError as e:
        raise ConfigError(f"init_from={init_from!r}: its weights do not fit the model ({e})") from None
    tied = {"head.weight"} if getattr(model.config, "tie_embeddings", False) else set()
    missing = [k for k in missing if k not in tied and not k.startswith("initial_states.")]
    if missing or unexpected:
        raise ConfigError(f"init_from={init_from!r}: its weights do not fit the model (missing {missing[:3]}, "
                          f"unexpected {unexpected[:3]})")
