"""LRA Image, with Fashion-MNIST in place of CIFAR-10: classify an image read as a sequence of grayscale pixels.

LRA's Image task (Tay et al. 2021) reads a CIFAR-10 picture converted to grayscale as 1,024 pixel values (32x32,
row-major) and asks for one of 10 classes. CIFAR-10 is not packaged for offline use; Fashion-MNIST (Xiao et al.
2017; 28x28 grayscale, 10 clothing classes, MIT licence) is, by Debian (``apt-get install dataset-fashion-mnist``
puts the four gzipped IDX files in ``/usr/share/datasets/fashion-mnist``). So sequences are 784 tokens
(``token = pixel + 1``: ``PAD = 0``, vocabulary 257, no padding needed), not 1,024; they are not padded to 1,024
because padding would add nothing a model must carry across. Numbers are not comparable with LRA's CIFAR ones
(Fashion-MNIST is easier).

Splits (fixed; the seed does not change them): the official 60,000 training images, of which the last
``valid_examples`` (default 5,000) are valid and the first ``train_examples`` of the others train; the official
10,000 test images, the first ``test_examples`` of them. Fashion-MNIST's files are class-balanced overall (6,000 /
1,000 per class); its first and last thousands are near balance, not exact (the last 5,000 training images hold
450 to 527 per class).

``write_standin`` writes tiny random IDX files in the same layout, for tests and smoke runs without the package.
"""
from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from ...config import ConfigError, check_ranges
from ..classification import ClassificationData

SPLITS = ("train", "valid", "test")
DEFAULT_PATH = "/usr/share/datasets/fashion-mnist"
FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
NUM_CLASSES = 10
UBYTE = 0x08   # the IDX type code of unsigned bytes


@dataclass(kw_only=True)
class LRAImageConfig:
    """Sequential Fashion-MNIST. ``path``: a folder with the four IDX files (gzipped or not; None: Debian's
    ``/usr/share/datasets/fashion-mnist``); ``valid_examples``: the last images of the official training set held
    out as valid; ``train_examples`` / ``test_examples``: caps (None: all)."""

    path: str | None = None
    train_examples: int | None = None
    valid_examples: int = 5000
    test_examples: int | None = None

    RANGES: ClassVar[dict[str, str]] = {"train_examples": "[1, inf)", "valid_examples": "[1, inf)",
                                        "test_examples": "[1, inf)"}

    @property
    def vocab_size(self) -> int:
        return 257

    @property
    def num_classes(self) -> int:
        return NUM_CLASSES


def read_idx(path: Path) -> np.ndarray:
    """An IDX file of unsigned bytes (gzipped if its name ends in .gz) as a uint8 array of the shape it declares.

    Layout: two zero bytes, the type code (0x08), the number of dimensions d, d big-endian uint32 sizes, the data."""
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != UBYTE or len(raw) < 4 + 4 * raw[3]:
        raise ConfigError(f"lra_image: {path} is not an IDX file of unsigned bytes (it must start with 00 00 08, "
                          "then the number of dimensions and their sizes)")
    start = 4 + 4 * raw[3]
    dims = np.frombuffer(raw, dtype=">u4", count=raw[3], offset=4).astype(np.int64)
    if len(raw) - start != int(np.prod(dims)):
        raise ConfigError(f"lra_image: {path} declares shape {tuple(dims.tolist())} but holds {len(raw) - start} "
                          "bytes of data")
    return np.frombuffer(raw, dtype=np.uint8, offset=start).reshape(dims)


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as an IDX file (gzipped if ``path`` ends in .gz)."""
    header = bytes([0, 0, UBYTE, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    raw = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)


def write_standin(folder: Path, train: int = 40, test: int = 20, seed: int = 0, gz: bool = True) -> Path:
    """Write four Fashion-MNIST-shaped IDX files of random 28x28 pixels and labels 0-9 into ``folder``."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", train), ("test", test)):
        images, labels = FILES[split]
        suffix = ".gz" if gz else ""
        write_idx(folder / (images + suffix), rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(folder / (labels + suffix), np.arange(n, dtype=np.uint8) % NUM_CLASSES)
    return folder


def find_file(folder: Path, name: str) -> Path:
    """``folder/name`` or ``folder/name.gz``; a missing file is an error that says how to install the data."""
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise ConfigError(
        f"lra_image: Fashion-MNIST not found: no {name}[.gz] in {folder}. Install Debian's package "
        f"(apt-get install dataset-fashion-mnist, which fills {DEFAULT_PATH}), or set lra_image.path to a folder "
        "holding train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte "
        "(gzipped or not; from https://github.com/zalandoresearch/fashion-mnist).")


def read_split(folder: Path, part: str) -> tuple[np.ndarray, np.ndarray]:
    """Images ``[N, H, W]`` and labels ``[N]`` of the official ``part`` ("train" or "test"), checked."""
    images_name, labels_name = FILES[part]
    images, labels = read_idx(find_file(folder, images_name)), read_idx(find_file(folder, labels_name))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ConfigError(f"lra_image: {folder}: {images_name} must hold [N, H, W] images and {labels_name} [N] "
                          f"labels; got shapes {images.shape} and {labels.shape}")
    if labels.size and labels.max() >= NUM_CLASSES:
        raise ConfigError(f"lra_image: {folder}/{labels_name} holds label {labels.max()}; labels must be 0-9")
    return images, labels


def lra_image(cfg: LRAImageConfig, seed: int, split: str = "train") -> ClassificationData:
    """One split of sequential Fashion-MNIST: inputs ``[N, H*W]`` (784) pixel tokens, labels ``[N]`` in 0-9.
    Deterministic; the split is fixed, so ``seed`` does not change it (the training loop shuffles)."""
    check_ranges(cfg, "lra_image")
    if split not in SPLITS:
        raise ConfigError(f"lra_image: split must be one of {list(SPLITS)}; got {split!r}")
    folder = Path(cfg.path) if cfg.path is not None else Path(DEFAULT_PATH)
    images, labels = read_split(folder, "test" if split == "test" else "train")
    if split == "test":
        chosen = slice(0, cfg.test_examples)
    else:
        if cfg.valid_examples >= len(images):
            raise ConfigError(f"lra_image.valid_examples={cfg.valid_examples} leaves no training images: the training "
                              f"file holds {len(images)}; it must be < {len(images)}")
        held = len(images) - cfg.valid_examples
        chosen = slice(held, None) if split == "valid" else slice(0, min(held, cfg.train_examples or held))
    pixels = images[chosen].reshape(-1, images.shape[1] * images.shape[2])    # (N, H*W), row-major
    return ClassificationData(torch.from_numpy(pixels.astype(np.int64) + 1),
                              torch.from_numpy(labels[chosen].astype(np.int64)))
