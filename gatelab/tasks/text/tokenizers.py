"""Offline tokenizers for language modelling: PTB-style words, raw bytes, GPT-2 BPE (tiktoken, from the installed
``gpt2.tiktoken`` ranks), a byte-level BPE trained on the corpus (the ``tokenizers`` library), and a pretrained
model's own tokenizer (``hf``: its fast tokenizer, kept with a model converted by ``gatelab convert``).

Every tokenizer has ``kind``, ``vocab_size``, ``encode(text) -> list[int]``, ``decode(ids) -> str`` and
``to_dict()``; ``fingerprint(tok)`` identifies it exactly, so a checkpoint can refuse a tokenizer it was not
trained with.
"""
from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any, Protocol

from .assets import asset_path

EOS = "<eos>"
UNK = "<unk>"
END_OF_TEXT = "<|endoftext|>"
TOKENIZERS = ("word", "byte", "gpt2", "bpe")   # the kinds a corpus builds; "hf" comes with a pretrained model


class Tokenizer(Protocol):
    kind: str
    vocab_size: int

    def encode(self, text: str) -> list[int]: ...
    def decode(self, ids: list[int]) -> str: ...
    def to_dict(self) -> dict[str, Any]: ...


class WordTokenizer:
    """Whitespace words with one ``<eos>`` per line, the standard word-level protocol of PTB language modelling.

    The vocabulary is built from the training split (most frequent first, ties in first-seen order), capped at
    ``max_vocab`` entries when given; other words map to ``<unk>``. On PTB this gives exactly its 10,000 types
    (9,999 words and ``<eos>``).
    """

    kind = "word"

    def __init__(self, vocab: list[str]):
        if EOS not in vocab or UNK not in vocab:
            raise ValueError(f"a word vocabulary must contain {EOS} and {UNK}")
        self.vocab = list(vocab)
        self.index = {w: i for i, w in enumerate(self.vocab)}

    @classmethod
    def train(cls, text: str, max_vocab: int = 0) -> WordTokenizer:
        counts = Counter(w for line in text.splitlines() for w in line.split() + [EOS])
        counts.setdefault(UNK, 0)
        vocab = [w for w, _ in counts.most_common()]
        if max_vocab and len(vocab) > max_vocab:
            vocab = [w for w in vocab if w != UNK][: max_vocab - 1] + [UNK]
        return cls(vocab)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> list[int]:
        unk = self.index[UNK]
        return [self.index.get(w, unk) for line in text.splitlines() if line.strip() for w in line.split() + [EOS]]

    def decode(self, ids: list[int]) -> str:
        words = [self.vocab[i] for i in ids]
        return " ".join(words).replace(f" {EOS} ", "\n").replace(f" {EOS}", "\n").replace(EOS, "\n")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "vocab": self.vocab}


def encode_prompt(tokenizer: Tokenizer, text: str) -> list[int]:
    """The ids a continuation of ``text`` starts from: as ``encode``, except that a word-level prompt's unfinished
    last line is left open (no ``<eos>``), so the model continues the sentence rather than starting a new one."""
    ids = tokenizer.encode(text)
    if isinstance(tokenizer, WordTokenizer) and ids and not text.endswith("\n"):
        return ids[:-1]                                  # the <eos> that closed the last line
    return ids


class ByteTokenizer:
    """UTF-8 bytes, 256 ids: nothing is unknown, and decoding inverts encoding exactly."""

    kind = "byte"
    vocab_size = 256

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: list[int]) -> str:
        return bytes(ids).decode("utf-8", errors="replace")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind}


GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


class GPT2Tokenizer:
    """GPT-2's byte-level BPE (50,257 ids, identical to tiktoken's r50k_base) through ``tiktoken``, read from the
    ``gpt2.tiktoken`` ranks installed by ``gatelab install-data`` (or an explicit path). Text is encoded as plain
    text: ``<|endoftext|>`` inside it is not treated as a special token."""

    kind = "gpt2"
    vocab_size = 50257

    def __init__(self, path: str | Path | None = None):
        try:
            import tiktoken
            from tiktoken.load import load_tiktoken_bpe
        except ImportError:
            raise ImportError("the gpt2 tokenizer needs the 'tiktoken' package: pip install tiktoken") from None
        ranks = load_tiktoken_bpe(str(path or asset_path("gpt2")))
        self.encoding = tiktoken.Encoding(name="gpt2", pat_str=GPT2_PATTERN, mergeable_ranks=ranks,
                                          special_tokens={END_OF_TEXT: 50256}, explicit_n_vocab=self.vocab_size)

    def encode(self, text: str) -> list[int]:
        return self.encoding.encode_ordinary(text)

    def decode(self, ids: list[int]) -> str:
        return self.encoding.decode(ids)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind}


class BPETokenizer:
    """A byte-level BPE trained on the corpus's training split with the ``tokenizers`` library (GPT-2's
    pre-tokenisation, no prefix space, ``<|endoftext|>`` as id 0). Decoding inverts encoding exactly."""

    kind = "bpe"

    def __init__(self, serialized: str):
        from tokenizers import Tokenizer as RustTokenizer

        self.tokenizer = RustTokenizer.from_str(serialized)

    @classmethod
    def train(cls, text: str, vocab_size: int = 8192) -> BPETokenizer:
        from tokenizers import Tokenizer as RustTokenizer
        from tokenizers import decoders, models, pre_tokenizers, trainers

        if vocab_size < 257:
            raise ValueError(f"a byte-level BPE needs vocab_size >= 257 (256 bytes + {END_OF_TEXT}), got {vocab_size}")
        tok = RustTokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[END_OF_TEXT], show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tok.train_from_iterator(text.splitlines(keepends=True), trainer=trainer, length=text.count("\n") + 1)
        return cls(tok.to_str())

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "tokenizer": json.loads(self.tokenizer.to_str())}


class HFTokenizer:
    """A pretrained model's fast tokenizer (a ``tokenizers.Tokenizer``, as transformers' ``backend_tokenizer``),
    kept with the model it belongs to. Text is encoded without special tokens (no BOS: windows add ``bos_id``
    themselves); decoding keeps special tokens. ``vocab_size`` is the model's number of ids (its embedding rows),
    which may exceed the tokenizer's own (models pad their vocabulary); ``bos`` is the model's BOS id (its EOS id
    where it has no BOS)."""

    kind = "hf"

    def __init__(self, serialized: str, bos: int, vocab_size: int = 0):
        from tokenizers import Tokenizer as RustTokenizer

        self.tokenizer = RustTokenizer.from_str(serialized)
        own = self.tokenizer.get_vocab_size(with_added_tokens=True)
        self.vocab_size = vocab_size or own
        if self.vocab_size < own:
            raise ValueError(f"an hf tokenizer of {own} ids cannot serve a model of vocab_size={vocab_size}")
        if not 0 <= bos < self.vocab_size:
            raise ValueError(f"the BOS id {bos} is not an id of a vocabulary of {self.vocab_size}")
        self.bos = bos

    @classmethod
    def from_pretrained(cls, tokenizer: Any, bos: int, vocab_size: int = 0) -> HFTokenizer:
        """From a transformers fast tokenizer (``PreTrainedTokenizerFast`` or anything with ``backend_tokenizer``);
        a slow (Python) tokenizer is refused."""
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is None:
            raise ValueError(f"{type(tokenizer).__name__} is not a fast tokenizer (no backend_tokenizer); gatelab "
                             "keeps a pretrained model's tokenizer as a tokenizers.Tokenizer")
        return cls(backend.to_str(), bos, vocab_size)

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "tokenizer": json.loads(self.tokenizer.to_str()), "bos": self.bos,
                "vocab_size": self.vocab_size}


def bos_id(tok: Tokenizer) -> int:
    """The id that starts a sequence: ``<eos>`` (the sentence boundary) for words, byte 0 (absent from text),
    ``<|endoftext|>`` for GPT-2 (50256) and the trained BPE (0), the model's own BOS for a pretrained one."""
    if isinstance(tok, WordTokenizer):
        return tok.index[EOS]
    if isinstance(tok, HFTokenizer):
        return tok.bos
    return {"byte": 0, "gpt2": 50256, "bpe": 0}[tok.kind]


def tokenizer_from_dict(data: dict[str, Any]) -> Tokenizer:
    """Rebuild a tokenizer saved with ``to_dict`` (stored with checkpoints so a mismatch can be detected)."""
    kind = data.get("kind")
    if kind == "word":
        return WordTokenizer(data["vocab"])
    if kind == "byte":
        return ByteTokenizer()
    if kind == "gpt2":
        return GPT2Tokenizer()
    if kind == "bpe":
        return BPETokenizer(json.dumps(data["tokenizer"]))
    if kind == "hf":
        return HFTokenizer(json.dumps(data["tokenizer"]), data["bos"], data["vocab_size"])
    raise ValueError(f"unknown tokenizer kind {kind!r}; known: {', '.join(TOKENIZERS)}, hf")


def fingerprint(tok: Tokenizer) -> str:
    """A short hash of everything that decides the tokenizer's ids."""
    return hashlib.sha256(json.dumps(tok.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


def check_same_tokenizer(expected: dict[str, Any], actual: Tokenizer, where: str) -> None:
    """Refuse to pair a model with a tokenizer it was not trained with (the ids would be silently wrong)."""
    saved = tokenizer_from_dict(expected)
    if fingerprint(saved) != fingerprint(actual):
        raise ValueError(f"tokenizer mismatch with {where}: it was trained with a {saved.kind} tokenizer of "
                         f"{saved.vocab_size} ids (fingerprint {fingerprint(saved)}), but this one is a {actual.kind} "
                         f"tokenizer of {actual.vocab_size} ids (fingerprint {fingerprint(actual)})")
