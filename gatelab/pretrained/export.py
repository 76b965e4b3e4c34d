"""``gatelab convert``: a pretrained Llama-family model written as a gatelab model folder (``config.json``,
``model.safetensors``, ``gatelab_tokenizer.json`` with the model's own tokenizer, and ``conversion.json``), which
``gatelab.hf.load_run``, ``gatelab generate`` and ``AutoModelForCausalLM`` load. The folder is written under a
temporary name beside ``out`` and renamed once complete, so a failure leaves nothing half-written."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from ..config import ConfigError
from ..tasks.text.tokenizers import HFTokenizer
from .convert import logits_gap, to_gatelab
from .source import Pretrained, load_pretrained, read_json, weights_digest

PROBE = "The capital of France is Paris. It lies on the Seine, and about two million people live there."
MAX_RELATIVE_GAP = 1e-4   # relative RMS difference of the logits allowed between the original and the conversion


def model_bos(pretrained: Pretrained) -> int:
    """The id a sequence starts with: the model's BOS, else its EOS (the tokenizer's where the config has none)."""
    sources = (pretrained.model.config, pretrained.tokenizer)
    for name in ("bos_token_id", "eos_token_id"):
        for source in sources:
            value = getattr(source, name, None)
            value = value[0] if isinstance(value, (list, tuple)) and value else value
            if isinstance(value, int):
                return value
    raise ConfigError(f"{pretrained.path}: neither the model nor its tokenizer names a BOS or EOS token")


def _check_out(out: Path, overwrite: bool) -> None:
    if not out.exists():
        return
    if not overwrite:
        raise ConfigError(f"{out} exists; pass --overwrite to replace it")
    ours = out.is_dir() and read_json(out / "config.json").get("model_type") == "gatelab"
    if not out.is_dir() or not (ours or not any(out.iterdir())):
        raise ConfigError(f"{out} exists and is not a gatelab model folder (nor empty); --overwrite replaces only "
                          "those, so choose another OUT")


def convert_to_folder(source: str | Path, out: str | Path, overwrite: bool = False) -> dict[str, Any]:
    """Load ``source`` (see ``load_pretrained``), convert it (``to_gatelab``), check that the logits agree on a
    probe text, and save it to ``out``; returns what ``conversion.json`` records (source, architecture,
    parameters, the logits' max and relative RMS difference on the probe)."""
    out = Path(out)
    _check_out(out, overwrite)
    pretrained = load_pretrained(source)
    lm = to_gatelab(pretrained.model)
    tokenizer = HFTokenizer.from_pretrained(pretrained.tokenizer, model_bos(pretrained), lm.config.vocab_size)
    ids = torch.tensor([tokenizer.encode(PROBE)[: lm.config.max_seq_len]])
    gap, relative = logits_gap(pretrained.model, lm, ids)
    if not relative <= MAX_RELATIVE_GAP:
        raise ConfigError(f"the converted model's logits differ from {pretrained.name}'s (relative RMS "
                          f"{relative:.2e} > {MAX_RELATIVE_GAP:g}); nothing written")
    record = {"source": str(source), "path": str(pretrained.path), "weights_sha256": weights_digest(pretrained.path),
              "architecture": type(pretrained.model).__name__,
              "params": lm.num_params(), "probe_tokens": ids.shape[1], "logits_max_abs_diff": gap,
              "logits_relative_rms_diff": relative}
    _write(lm, tokenizer, record, out)
    return record


def _usual_permissions(folder: Path) -> None:
    """The folder and its files as an ordinary ``mkdir`` and ``open`` would make them under the user's umask (a
    temporary folder, and transformers' safetensors file, are private to the owner)."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for file in folder.iterdir():
        file.chmod(0o666 & ~umask)


def _write(lm: Any, tokenizer: HFTokenizer, record: dict[str, Any], out: Path) -> None:
    from ..hf import save_run_model

    def fill(staging: Path) -> None:
        save_run_model(lm, staging, tokenizer)
        (staging / "conversion.json").write_text(json.dumps(record, indent=2))
        _usual_permissions(staging)

    write_folder(out, fill)


def write_folder(out: Path, fill: Any) -> None:
    """Write a folder in one step: ``fill(staging)`` writes into a fresh private folder beside ``out`` (unique per
    call, so concurrent writers never share one), which then replaces ``out``; if anything fails, the staging folder
    is removed and a replaced ``out`` is put back."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp"))
    old = None
    try:
        fill(staging)
        if out.exists():
            old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old"))
            os.replace(out, old / "model")
        os.replace(staging, out)
    except BaseException:
        if old is not None and not out.exists():
            os.replace(old / "model", out)   # put the replaced folder back
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
