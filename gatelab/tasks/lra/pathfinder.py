"""Pathfinder from the Long Range Arena (Tay et al., ICLR 2021, "Long Range Arena: A Benchmark for Efficient
Transformers"): our own generator with the semantics of the drawings LRA used (drewlinsley/pathfinder,
``snakes2.py``, with LRA's 32x32 settings). The snakes are drawn by ``snakes.py``.

An image holds two target "snakes" and a few short distractor snakes. A snake is a dashed contour: a chain of short
straight paddles separated by gaps, each turning from the one before by an angle drawn with LRA's continuity weight
``cos^2(min(|turn| * continuity, pi/2))`` among the headings that stay clear of the other snakes. The two target
snakes start ``seed_distance`` apart near the centre (LRA: the first start at least ``2 * seed_distance`` from the
border) and grow a paddle at a time in turn. Two marker dots are drawn: one at the start of one target snake and
one at the end of the same snake (label 1, connected) or of the other target snake (label 0), so both classes show
the same kind of drawing. Every split has exactly half positive examples (one more negative when N is odd).

Units follow LRA's 32x32 drawings: paddles 2 pixels long (``paddle_length=2``), 2 pixels from a paddle's end to
the next paddle's start along its heading (LRA's pivot advance ``paddle_length + 2 * margin``, ``margin=1``), so a
paddle every 4 pixels of contour; markers of radius 1.5 (3x3 pixels). ``contour_length`` counts paddles per target
snake, as LRA's does: 6 (its generator's baseline: LRA's "easy"), 9 (intermediate), 14 (hard, LRA's reported
Pathfinder score). Distractors: ``contour_length // 3`` paddles each, ``20 // that`` of them (LRA).

Connectivity, the rule the labels obey: pixels drawn (value > 0) are neighbours when their Chebyshev distance is at
most 2, so a one-pixel dash gap joins. Consecutive paddles of a snake are always within that distance; pixels of
different snakes (markers included) are kept at Chebyshev distance >= 3, so the two markers lie in one component
iff the label is 1. Differences from LRA: strokes are not antialiased (paddles 191 = LRA's paddle contrast
0.75 x 255, markers 255); snakes keep that 3-pixel separation where LRA only keeps paddles from overlapping; a snake
that runs into a dead end takes paddles back instead of restarting the image; a distractor that finds no room after
5 tries is left out, as in LRA.

Splits: LRA generated 200,000 images per difficulty and took 80% / 10% / 10% (160k train, 20k valid, 20k test);
the defaults here are 10,000 / 1,000 / 1,000. Each split has its own random stream; a drawing repeating across
splits is vanishingly unlikely (checked by the tests). Tokens: pixel value + 1 (1-256), row-major, ``grid**2`` long.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from ...config import ConfigError, check_ranges
from ..classification import ClassificationData
from .snakes import DISC, FAR, GAP, PADDLE, add_distractors, draw_targets

SPLITS = ("train", "valid", "test")
MARKER = 255
BATCH = 4096             # drawings attempted at once
MIN_YIELD = 0.02         # fewer drawings that fit than this: the grid is too small for the contours
PATH_SHARE = 7           # the target snakes' paths (2 x 4 x contour_length pixels) fit in 1/7 of the image


@dataclass(kw_only=True)
class PathfinderConfig:
    """Pathfinder drawings on a ``grid x grid`` image. LRA: grid 32, contour_length 6 / 9 / 14 (its reported
    Pathfinder: 14, the default), distractors ``contour_length // 3`` paddles long (``distractor_length``), ``20 //
    distractor_length`` of them (``num_distractors``), continuity 1.0, seed_distance 7 (at least 5 here: the two
    start markers need room between them), 160k / 20k / 20k examples (here 10k / 1k / 1k)."""

    grid: int = 32
    contour_length: int = 14
    distractor_length: int | None = None
    num_distractors: int | None = None
    continuity: float = 1.0
    seed_distance: float = 7.0
    train_examples: int = 10_000
    valid_examples: int = 1_000
    test_examples: int = 1_000

    RANGES: ClassVar[dict[str, str]] = {"grid": "[8, inf)", "contour_length": f"[2, {FAR - 2}]",
                                        "distractor_length": f"[1, {FAR - 2}]", "num_distractors": "[0, inf)",
                                        "continuity": "(0, inf)", "seed_distance": "[5, inf)",
                                        "train_examples": "[1, inf)", "valid_examples": "[1, inf)",
                                        "test_examples": "[1, inf)"}

    def check(self) -> None:
        if self.grid - 2 * self.seed_margin < 1:
            raise ConfigError(f"pathfinder.grid ({self.grid}) must exceed 4 x pathfinder.seed_distance "
                              f"({self.seed_distance}): the first snake starts 2 x seed_distance from the border")
        longest = self.grid ** 2 // (PATH_SHARE * 2 * int(PADDLE + GAP))
        if self.contour_length > longest:
            raise ConfigError(f"pathfinder.grid ({self.grid}) is too small for pathfinder.contour_length "
                              f"({self.contour_length}): two snakes of 4 pixels per paddle must fit in a seventh of "
                              f"the image; use contour_length <= {longest} or grid >= "
                              f"{int(np.ceil(np.sqrt(self.contour_length * PATH_SHARE * 2 * (PADDLE + GAP))))}")

    @property
    def distractors(self) -> tuple[int, int]:
        """(paddles per distractor, number of distractors), LRA's defaults where not set."""
        length = self.distractor_length or max(1, self.contour_length // 3)
        return length, self.num_distractors if self.num_distractors is not None else 20 // length

    @property
    def seed_margin(self) -> int:
        """The first target snake starts this far from the border (LRA: 2 x seed_distance)."""
        return int(np.ceil(2 * self.seed_distance))

    @property
    def vocab_size(self) -> int:
        """PAD 0 and the 256 pixel values, shifted by one."""
        return 257

    @property
    def num_classes(self) -> int:
        return 2

    @property
    def seq_len(self) -> int:
        return self.grid * self.grid

    def examples(self, split: str) -> int:
        if split not in SPLITS:
            raise ConfigError(f"pathfinder: split must be one of {list(SPLITS)}; got {split!r}")
        return getattr(self, f"{split}_examples")


def pathfinder_images(cfg: PathfinderConfig, seed: int, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """One split as images ``[N, grid, grid]`` uint8 (0-255) and labels ``[N]`` int64 (1: the markers are on
    one snake). Deterministic in ``(cfg, seed, split)``."""
    check_ranges(cfg, "pathfinder")
    n, g = cfg.examples(split), cfg.grid
    rng = np.random.default_rng([seed, SPLITS.index(split), 0x9A7F])
    drawings, ends, tried, got = [], [], 0, 0
    while got < n:
        batch = min(BATCH, int(1.2 * (n - got) / (got / tried if got else 1.0)) + 16)
        state, end = draw_targets(rng, batch, cfg)
        add_distractors(rng, state, cfg)
        drawings.append(state.images())
        ends.append(end)
        tried, got = tried + batch, got + len(end)
        if got < n and tried >= 512 and got < MIN_YIELD * tried:
            raise ConfigError(f"pathfinder.grid ({g}) is too small for pathfinder.contour_length "
                              f"({cfg.contour_length}) with these settings: only {got} of {tried} drawings fit; "
                              f"use a larger grid or shorter contours")
    images, end = np.concatenate(drawings)[:n], np.concatenate(ends)[:n]
    labels = rng.permutation(np.arange(n) % 2)
    first = rng.integers(0, 2, n)                             # the target snake whose start gets a marker
    last = np.where(labels == 1, first, 1 - first)            # the snake whose end gets the other
    rows = np.arange(n)
    for y, x in (end[rows, first, 0].T, end[rows, last, 1].T):
        my, mx = y + DISC[:, :1], x + DISC[:, 1:]                                       # [9, n]
        inside = (my >= 0) & (my < g) & (mx >= 0) & (mx < g)
        images[np.broadcast_to(rows, my.shape)[inside], my[inside], mx[inside]] = MARKER
    return images, labels.astype(np.int64)


def pathfinder(cfg: PathfinderConfig, seed: int, split: str = "train") -> ClassificationData:
    """One split as token sequences: inputs ``[N, grid*grid]`` int64, pixel value + 1 row-major; labels ``[N]``."""
    images, labels = pathfinder_images(cfg, seed, split)
    inputs = torch.from_numpy(images.reshape(len(images), -1).astype(np.int64) + 1)
    return ClassificationData(inputs, torch.from_numpy(labels))
