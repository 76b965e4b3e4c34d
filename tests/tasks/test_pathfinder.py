import numpy as np
import pytest
import torch

from gatelab.config import ConfigError
from gatelab.tasks.lra import PathfinderConfig, pathfinder, pathfinder_images

HARD = PathfinderConfig(contour_length=14, train_examples=120, valid_examples=40, test_examples=40)
EASY = PathfinderConfig(contour_length=6, train_examples=120, valid_examples=40, test_examples=40)


def dilate(mask: np.ndarray, reach: int) -> np.ndarray:
    """Every pixel within Chebyshev distance ``reach`` of a set pixel of ``mask`` ``[N, H, W]``."""
    padded = np.pad(mask, ((0, 0), (reach, reach), (reach, reach)))
    h, w = mask.shape[1:]
    out = np.zeros_like(mask)
    for dy in range(2 * reach + 1):
        for dx in range(2 * reach + 1):
            out |= padded[:, dy:dy + h, dx:dx + w]
    return out


def flood(seed: np.ndarray, allowed: np.ndarray, reach: int) -> np.ndarray:
    """The pixels of ``allowed`` reachable from ``seed`` in steps of Chebyshev distance <= ``reach``."""
    region = seed & allowed
    while True:
        grown = dilate(region, reach) & allowed
        if (grown == region).all():
            return region
        region = grown


def markers(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two marker dots (pixels at 255) of every image as masks, checking there are exactly two 8-connected
    blobs."""
    dots = images == 255
    first = np.zeros_like(dots)
    flat = dots.reshape(len(dots), -1).argmax(1)
    first.reshape(len(dots), -1)[np.arange(len(dots)), flat] = True
    a = flood(first, dots, 1)
    b = dots & ~a
    rest = np.zeros_like(dots)
    rest.reshape(len(dots), -1)[np.arange(len(dots)), b.reshape(len(dots), -1).argmax(1)] = True
    assert b.any((1, 2)).all() and (flood(rest, b, 1) == b).all(), "not exactly two marker dots"
    return a, b


def connected(images: np.ndarray, reach: int) -> np.ndarray:
    a, b = markers(images)
    return (flood(a, images > 0, reach) & b).any((1, 2))


@pytest.mark.parametrize("cfg", [EASY, HARD], ids=["easy", "hard"])
def test_labels_equal_marker_connectivity_by_flood_fill(cfg):
    images, labels = pathfinder_images(cfg, 0, "train")
    assert images.shape == (120, 32, 32) and images.dtype == np.uint8
    assert (connected(images, reach=2) == (labels == 1)).all()


def test_dashes_need_the_gap_rule_and_distractors_are_drawn():
    images, labels = pathfinder_images(HARD, 1, "train")
    plain = connected(images, reach=1)                      # 8-connectivity does not cross the dash gaps
    assert plain[labels == 1].mean() < 0.2
    ink = images > 0
    parts = 0
    left = ink.copy()
    while left.any():                                       # count contours: components under the gap rule
        seed = np.zeros_like(left)
        has = left.any((1, 2))
        seed.reshape(len(left), -1)[np.flatnonzero(has), left[has].reshape(has.sum(), -1).argmax(1)] = True
        left &= ~flood(seed, left, 2)
        parts += has.sum()
    assert parts / len(images) > 4                          # two target snakes and a few distractors


def test_longer_contours_give_longer_paths_between_the_markers():
    def path_steps(cfg):
        images, labels = pathfinder_images(cfg, 2, "train")
        images = images[labels == 1]
        a, b = markers(images)
        region, steps = a.copy(), np.zeros(len(images))
        for step in range(1, 200):
            region = dilate(region, 2) & (images > 0)
            steps[(steps == 0) & (region & b).any((1, 2))] = step
        assert (steps > 0).all()
        return steps.mean()

    assert path_steps(HARD) > 1.5 * path_steps(EASY)


def test_deterministic_balanced_and_splits_disjoint():
    a, b, c = pathfinder(EASY, 3), pathfinder(EASY, 3), pathfinder(EASY, 4)
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.inputs, c.inputs)
    assert a.inputs.shape == (120, EASY.seq_len) and a.inputs.dtype == torch.int64
    assert int(a.inputs.min()) >= 1 and int(a.inputs.max()) < EASY.vocab_size == 257
    images, labels = pathfinder_images(EASY, 3)
    assert torch.equal(a.inputs, torch.from_numpy(images.reshape(120, -1).astype(np.int64) + 1))
    seen = {}
    for split in ("train", "valid", "test"):
        data = pathfinder(EASY, 3, split)
        assert int(data.labels.sum()) == len(data) // 2 and EASY.num_classes == 2
        rows = {r.numpy().tobytes() for r in data.inputs}
        assert len(rows) == len(data)
        for other, other_rows in seen.items():
            assert not rows & other_rows, f"an image in both {split} and {other}"
        seen[split] = rows
    odd = PathfinderConfig(contour_length=6, train_examples=7)
    assert int(pathfinder(odd, 0).labels.sum()) == 3


@pytest.mark.parametrize("kw,fields", [
    (dict(grid=24, seed_distance=5, contour_length=14), ["pathfinder.grid", "pathfinder.contour_length"]),
    (dict(grid=24), ["pathfinder.grid", "pathfinder.seed_distance"]),
    (dict(seed_distance=4), ["pathfinder.seed_distance"]),
    (dict(contour_length=1), ["pathfinder.contour_length"]),
    (dict(continuity=0.0), ["pathfinder.continuity"]),
    (dict(num_distractors=-1), ["pathfinder.num_distractors"]),
    (dict(test_examples=0), ["pathfinder.test_examples"]),
])
def test_bad_settings_name_the_fields(kw, fields):
    with pytest.raises(ConfigError) as err:
        pathfinder(PathfinderConfig(**kw), 0)
    assert all(f in str(err.value) for f in fields), str(err.value)


def test_unknown_split_is_an_error():
    with pytest.raises(ConfigError, match="split"):
        pathfinder(EASY, 0, "dev")
