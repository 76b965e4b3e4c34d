"""Offline tokenizers for language modelling: PTB-style words and raw bytes."""
from __future__ import annotations

from collections import Counter
from typing import Any

EOS = "<eos>"
UNK = "<unk>"


class WordTokenizer:
    """Whitespace words with one ``<eos>`` per line, the standard word-level protocol of PTB language modelling.

    The vocabulary is built from the training split (most frequent first, ties in first-seen order); words
    outside it map to ``<unk>``. On PTB this gives exactly its 10,000 types (9,999 words and ``<eos>``).
    """

    kind = "word"

    def __init__(self, vocab: list[str]):
        if EOS not in vocab or UNK not in vocab:
            raise ValueError(f"a word vocabulary must contain {EOS} and {UNK}")
        self.vocab = list(vocab)
        self.index = {w: i for i, w in enumerate(self.vocab)}

    @classmethod
    def train(cls, text: str) -> WordTokenizer:
        counts = Counter(w for line in text.splitlines() for w in line.split() + [EOS])
        counts.setdefault(UNK, 0)
        return cls([w for w, _ in counts.most_common()])

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


def tokenizer_from_dict(data: dict[str, Any]) -> WordTokenizer | ByteTokenizer:
    """Rebuild a tokenizer saved with ``to_dict`` (stored with checkpoints so a mismatch can be detected)."""
    if data.get("kind") == "word":
        return WordTokenizer(data["vocab"])
    if data.get("kind") == "byte":
        return ByteTokenizer()
    raise ValueError(f"unknown tokenizer kind {data.get('kind')!r}; known: word, byte")
