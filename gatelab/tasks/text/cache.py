"""Tokenised corpora cached as memory-mapped arrays, keyed by (corpus, tokenizer, cache version); a tokenizer given
as an object (the one saved with a model) is keyed by its kind and fingerprint.

Layout: ``<data_home>/tokens/<corpus key>/<tokenizer key>-v<CACHE_VERSION>/`` holding ``tokenizer.json``,
``meta.json`` and ``{train,valid,test}.bin`` (uint16 when the vocabulary fits, else int32). A cache folder is
built under a temporary name and renamed into place, so a reader never sees a partial one. A local folder's key
includes a hash of its path, file sizes and modification times: editing the files makes a new entry.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ...config import ConfigError
from .assets import data_home
from .corpora import LOADERS, SPLITS, load_corpus
from .tokenizers import (
    TOKENIZERS,
    BPETokenizer,
    ByteTokenizer,
    GPT2Tokenizer,
    Tokenizer,
    WordTokenizer,
    fingerprint,
    tokenizer_from_dict,
)

CACHE_VERSION = 1
DEFAULT_BPE_VOCAB = 8192


def corpus_key(name_or_path: str) -> str:
    """A stable name for a corpus: its registry name, or ``<folder>-<hash of path, sizes, mtimes>``."""
    if name_or_path in LOADERS:
        return name_or_path
    folder = Path(name_or_path).resolve()
    files = sorted(folder.glob("*.txt"))
    stamp = [str(folder)] + [f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files]
    return f"{folder.name}-{hashlib.sha256('|'.join(stamp).encode()).hexdigest()[:12]}"


def tokenizer_key(kind: str, vocab_size: int) -> str:
    if kind not in TOKENIZERS:
        raise ValueError(f"unknown tokenizer {kind!r}; available: {', '.join(TOKENIZERS)}")
    if kind in ("byte", "gpt2") and vocab_size:
        raise ValueError(f"lm.vocab_size applies to the word and bpe tokenizers, not {kind} "
                         "(whose vocabulary is fixed)")
    if kind == "bpe":
        return f"bpe{vocab_size or DEFAULT_BPE_VOCAB}"
    return f"word{vocab_size}" if kind == "word" and vocab_size else kind


def build_tokenizer(kind: str, train_text: str, vocab_size: int = 0) -> Tokenizer:
    """A tokenizer of ``kind``; word and bpe learn their vocabulary from ``train_text`` (``vocab_size`` caps the
    word vocabulary, 0 = every word; it sets the BPE size, 0 = 8192)."""
    tokenizer_key(kind, vocab_size)
    if kind == "word":
        return WordTokenizer.train(train_text, vocab_size)
    if kind == "bpe":
        return BPETokenizer.train(train_text, vocab_size or DEFAULT_BPE_VOCAB)
    return ByteTokenizer() if kind == "byte" else GPT2Tokenizer()


def _write(folder: Path, tok: Tokenizer, texts: dict[str, str], source: str) -> None:
    dtype = np.uint16 if tok.vocab_size <= np.iinfo(np.uint16).max + 1 else np.int32
    lengths = {}
    for split in SPLITS:
        ids = np.asarray(tok.encode(texts[split]), dtype=dtype)
        ids.tofile(folder / f"{split}.bin")
        lengths[split] = len(ids)
    (folder / "tokenizer.json").write_text(json.dumps(tok.to_dict()))
    meta = {"corpus": source, "tokenizer": tok.kind, "vocab_size": tok.vocab_size, "fingerprint": fingerprint(tok),
            "dtype": np.dtype(dtype).name, "lengths": lengths, "version": CACHE_VERSION}
    (folder / "meta.json").write_text(json.dumps(meta, indent=2))


def tokenized_corpus(data: str, kind: str, vocab_size: int = 0, cache: bool = True,
                     tokenizer: Tokenizer | None = None) -> tuple[Tokenizer, dict[str, np.ndarray]]:
    """The tokenizer and the token ids of each split of corpus ``data`` (a name or a folder). With ``cache`` the
    ids are memory-mapped from the cache (built on first use); without it they are computed in memory.
    ``tokenizer``: this one (the tokenizer saved with a model, ``lm.tokenizer=model``) instead of one of ``kind``."""
    def make(train_text: str) -> Tokenizer:
        return tokenizer if tokenizer is not None else build_tokenizer(kind, train_text, vocab_size)

    if not cache:
        texts = load_corpus(data)
        tok = make(texts["train"])
        return tok, {s: np.asarray(tok.encode(texts[s]), dtype=np.int64) for s in SPLITS}
    key = f"{tokenizer.kind}-{fingerprint(tokenizer)}" if tokenizer is not None else tokenizer_key(kind, vocab_size)
    folder = data_home() / "tokens" / corpus_key(data) / f"{key}-v{CACHE_VERSION}"
    if not (folder / "meta.json").exists():
        texts = load_corpus(data)
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=folder.name + ".tmp"))
        try:
            _write(staging, make(texts["train"]), texts, data)
            with contextlib.suppress(OSError):   # another process finished the same entry first: same content
                os.replace(staging, folder)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    try:
        meta = json.loads((folder / "meta.json").read_text())
        tok = tokenizer or tokenizer_from_dict(json.loads((folder / "tokenizer.json").read_text()))
        streams = {s: np.memmap(folder / f"{s}.bin", dtype=meta["dtype"], mode="r", shape=(meta["lengths"][s],))
                   for s in SPLITS}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"the token cache {folder} is damaged ({type(e).__name__}: {e}); delete that folder and "
                          "it is rebuilt on the next use") from None
    return tok, streams
