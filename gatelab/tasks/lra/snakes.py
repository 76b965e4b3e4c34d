"""Dashed "snakes" drawn in a batch of images at once, for Pathfinder (see ``pathfinder.py`` for the task).

A snake is a chain of paddles: straight strokes PADDLE pixels long, each starting GAP beyond the end of the one
before along its heading (LRA's 32x32 drawings: ``paddle_length=2``, pivot advance ``paddle_length + 2 * margin``
with ``margin=1``). A snake's first paddle takes a uniform heading; each next one a heading among HEADINGS with
LRA's continuity weight ``cos^2(min(|turn| * continuity, pi/2))`` (drewlinsley/pathfinder ``get_coords_cmf``), among
those that are clear: inside the image, at Chebyshev distance > REACH from every other snake, and from this snake's
own paddles (and markers) except the one before. At a dead end the snake takes back its last paddle and never
retries the heading that led there (deeper take-backs as dead ends repeat: one more paddle every BACKOFF); after
``UNDO * paddles`` take-backs it fails.

Pixel maps are flat over (image, pixel) on a canvas with a MARGIN of pixels around the image, so that candidate
paddles reaching past the border need no bounds checks. Per canvas pixel, ``maps`` holds a code (FREE, NEAR: within
REACH of a finished snake, OUTSIDE the image) and, for each snake being drawn, its zone: the number of its first
group (marker or paddle) within REACH of the pixel, FAR if none. Pixel arrays are ``y, x`` of shape ``[..., m]``
for m images, in canvas coordinates (image coordinates + MARGIN).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .pathfinder import PathfinderConfig

PADDLE, GAP = 2.0, 2.0                          # paddle length, gap to the next paddle's start (pixels)
STEPS = np.array([0.0, 1.0, 2.0])               # points along a paddle (1 apart: its pixels are 8-connected)
HEADINGS = 16                                   # candidate headings, 22.5 degrees apart (LRA: ~19 per circle)
REACH = 2                                       # different snakes stay at Chebyshev distance > REACH
MARGIN = 5                                      # canvas pixels around the image (a candidate's marker: 5 out)
STROKE = 191                                    # LRA's paddle contrast 0.75 x 255
FAR = np.iinfo(np.int8).max                     # no group within REACH (groups: 0 .. paddles + 1)
FREE, NEAR, OUTSIDE = 0, 1, 2
DISTRACTOR_TRIES = 5                            # LRA redraws a distractor up to 4 times after the first
PIXEL_TRIES = 20                                # uniform draws for a distractor's free start pixel
UNDO, BACKOFF = 3, 10                           # take-backs per paddle; every BACKOFF take-backs go one deeper
DISTRACTOR_UNDO = 1                             # take-backs per paddle of a distractor
ANGLES = np.arange(HEADINGS) * 2 * np.pi / HEADINGS
UNIT = np.stack([np.sin(ANGLES), np.cos(ANGLES)], -1)                  # [J, (dy, dx)]
OFFSET = STEPS[:, None, None] * UNIT                                    # [T, J, (dy, dx)]
DISC = np.array([(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)])   # a marker: radius 1.5 around a pixel
AROUND = np.array([(dy, dx) for dy in range(-REACH, REACH + 1) for dx in range(-REACH, REACH + 1)])


def around(offsets: np.ndarray, y: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixels ``y, x`` ``[...]`` moved by each of ``offsets`` ``[K, 2]``: ``[K, ...]``."""
    shape = (len(offsets),) + (1,) * y.ndim
    return y + offsets[:, 0].reshape(shape), x + offsets[:, 1].reshape(shape)


class Drawing:
    """The canvases of ``n`` images of ``g x g`` pixels while up to ``snakes`` snakes are drawn in each at once.
    ``maps`` ``[n * size, 1 + snakes]`` int8 holds per canvas pixel its code and the zone of each snake (one
    gather reads all), ``image`` ``[n * size]`` the strokes."""

    def __init__(self, n: int, g: int, snakes: int = 1):
        self.n, self.g, self.width = n, g, g + 2 * MARGIN
        self.size = self.width ** 2
        frame = np.full((self.width, self.width, 1 + snakes), FAR, np.int8)
        frame[..., 0] = OUTSIDE
        frame[MARGIN:MARGIN + g, MARGIN:MARGIN + g, 0] = FREE
        self.maps = np.tile(frame.reshape(-1, 1 + snakes), (n, 1))
        self.image = np.zeros(n * self.size, np.uint8)

    def index(self, rows, y, x) -> np.ndarray:
        return rows * self.size + y * self.width + x

    def bad(self, rows, y, x, lowest, snake: int, clip: bool = False) -> np.ndarray:
        """Whether each pixel is ruled out for ``snake``: outside the image (ignored with ``clip``), near a
        finished or another snake, or near a group of this snake below ``lowest``."""
        maps = np.take(self.maps, self.index(rows, y, x), axis=0)
        bad = (maps[..., 0] == NEAR) if clip else (maps[..., 0] != FREE)
        for other in range(1, maps.shape[-1]):
            bad |= maps[..., other] < (lowest if other == 1 + snake else FAR)
        return bad

    def claim(self, rows, y, x, group, snake: int) -> None:
        """Record group ``group`` ``[m]`` of ``snake`` (pixels ``y, x`` ``[..., m]`` of images ``rows`` ``[m]``)
        on every pixel within REACH of it."""
        i, flat = self.index(rows, *around(AROUND, y, x)) * self.maps.shape[1] + 1 + snake, self.maps.reshape(-1)
        flat[i] = np.minimum(flat[i], group)

    def unclaim(self, rows, y, x, group, snake: int) -> None:
        """Undo ``claim`` of the last group ``group`` of ``snake``."""
        i, flat = self.index(rows, *around(AROUND, y, x)) * self.maps.shape[1] + 1 + snake, self.maps.reshape(-1)
        flat[i] = np.where(flat[i] == group, FAR, flat[i])

    def finish(self, rows, y, x, snake: int, keep: np.ndarray | None = None) -> None:
        """End ``snake`` (all its pixels ``y, x`` ``[..., m]`` of images ``rows`` ``[m]``): where ``keep``, the
        free pixels within REACH of it become NEAR; its zone is cleared."""
        i = self.index(rows, *around(AROUND, y, x)) * self.maps.shape[1]
        flat = self.maps.reshape(-1)
        code = i if keep is None else i[..., keep]
        flat[code] = np.where(flat[code] == FREE, NEAR, flat[code])
        flat[i + 1 + snake] = FAR

    def draw(self, rows, y, x, value: int) -> None:
        self.image[self.index(rows, y, x)] = value

    def subset(self, rows: np.ndarray) -> Drawing:
        """The drawing of images ``rows`` only."""
        sub = Drawing(0, self.g, self.maps.shape[1] - 1)
        sub.n = len(rows)
        sub.maps = self.maps.reshape(self.n, self.size, -1)[rows].reshape(sub.n * self.size, self.maps.shape[1])
        sub.image = self.image.reshape(self.n, -1)[rows].reshape(-1)
        return sub

    def free(self, rows, y, x) -> np.ndarray:
        return self.maps.reshape(-1)[self.index(rows, y, x) * self.maps.shape[1]] == FREE

    def images(self) -> np.ndarray:
        """The images drawn, ``[n, g, g]`` uint8."""
        canvas = self.image.reshape(self.n, self.width, self.width)
        return canvas[:, MARGIN:MARGIN + self.g, MARGIN:MARGIN + self.g]


class Walk:
    """One snake of ``paddles`` paddles drawn as ``snake`` of ``state`` in each image ``rows`` ``[m]`` from pixel
    ``tail`` ``[m, 2]`` (canvas coordinates). Groups: 0 is the start marker (claimed by the caller, if any),
    paddle j is group j + 1, and with ``end_marker`` the marker around the last paddle's end is group
    ``paddles + 1`` (the last paddle keeps room for it, away from the start marker). A paddle may come near the
    group before its own (paddle 1 also near the start marker), never near earlier ones. ``y, x``
    ``[paddles, T, m]`` hold the pixels, ``failed`` ``[m]`` the snakes that found no room."""

    def __init__(self, state: Drawing, snake: int, rows: np.ndarray, tail: np.ndarray, paddles: int,
                 continuity: float, end_marker: bool = False, undo: int = UNDO):
        m = len(rows)
        self.state, self.snake, self.rows, self.paddles, self.end_marker = state, snake, rows, paddles, end_marker
        self.tail = tail.astype(float)
        self.y, self.x = np.zeros((2, paddles, len(STEPS), m), np.int64)
        self.ends, self.heading = np.zeros((paddles, m, 2)), np.zeros((paddles, m), np.int64)
        self.tried = np.zeros((paddles, m), np.int64)        # headings that led to dead ends, as bits
        self.placed, self.undo, self.budget = np.zeros(m, np.int64), np.full(m, undo * paddles), undo * paddles
        self.failed = np.zeros(m, bool)
        turns = np.arange(-(HEADINGS // 2) + 1, HEADINGS // 2)                          # [K] in headings
        weight = np.cos(np.minimum(np.abs(turns) * 2 * np.pi / HEADINGS * continuity, np.pi / 2)) ** 2
        self.turns, self.weight = turns[weight > 1e-12], weight[weight > 1e-12]

    def active(self) -> np.ndarray:
        return np.flatnonzero((self.placed < self.paddles) & ~self.failed)

    def step(self, rng: np.random.Generator) -> None:
        """Add one paddle to every unfinished snake, or take paddles back where no heading is clear."""
        act, state, snake = self.active(), self.state, self.snake
        k, r = self.placed[act], self.rows[act]
        first, prev = k == 0, np.maximum(k - 1, 0)
        last = self.heading[prev, act]
        start = np.where(first[:, None], self.tail[act], self.ends[prev, act] + GAP * UNIT[last])   # [a, 2]
        cand = np.where(first[:, None], rng.integers(0, HEADINGS, len(act))[:, None],
                        (last[:, None] + self.turns) % HEADINGS)                                    # [a, K]
        weight = np.where(first[:, None], np.arange(len(self.turns)) == 0, self.weight)              # uniform start
        cy = np.floor(start[:, 0, None] + OFFSET[:, cand, 0] + 0.5).astype(np.int64)                # [T, a, K]
        cx = np.floor(start[:, 1, None] + OFFSET[:, cand, 1] + 0.5).astype(np.int64)
        lowest = np.where(k > 1, k, 0)[:, None]           # the paddle before may be near (the first, the marker too)
        bad = state.bad(r[:, None], cy, cx, lowest, snake).any(0)                                    # [a, K]
        final = k == self.paddles - 1
        if self.end_marker and final.any():
            f = np.flatnonzero(final)
            my, mx = around(DISC, cy[-1, f], cx[-1, f])
            bad[f] |= state.bad(r[f, None], my, mx, np.maximum(lowest[f], 1), snake, clip=True).any(0)
        bad |= (self.tried[k, act][:, None] >> cand) & 1 == 1
        weight = np.where(bad, 0.0, weight)
        total = weight.sum(1)
        go = total > 0
        pick = np.argmax(np.cumsum(weight, 1) > (rng.random(len(act)) * total)[:, None], 1)
        a, kg, j = act[go], k[go], cand[go, pick[go]]
        self.y[kg, :, a], self.x[kg, :, a] = cy[:, go, pick[go]].T, cx[:, go, pick[go]].T
        self.heading[kg, a] = j
        self.ends[kg, a] = start[go] + PADDLE * UNIT[j]
        state.claim(self.rows[a], self.y[kg, :, a].T, self.x[kg, :, a].T, kg + 1, snake)
        if self.end_marker:
            f = a[final[go]]
            state.claim(self.rows[f], *around(DISC, self.y[-1, -1, f], self.x[-1, -1, f]), self.paddles + 1, snake)
        self.placed[a] += 1
        self._take_back(act[~go])

    def _take_back(self, stuck: np.ndarray) -> None:
        """Remove the last paddles of the snakes ``stuck`` (one, one more every BACKOFF take-backs so far), or mark
        them failed once their take-backs are used up."""
        self.failed[stuck[self.undo[stuck] == 0]] = True
        back = stuck[self.undo[stuck] > 0]
        depth = np.minimum(self.placed[back], 1 + (self.budget - self.undo[back]) // BACKOFF)
        self.undo[back] -= 1
        while len(back := back[depth > 0]):
            depth = depth[depth > 0]
            k = self.placed[back] - 1
            self.state.unclaim(self.rows[back], self.y[k, :, back].T, self.x[k, :, back].T, k + 1, self.snake)
            self.tried[k, back] |= 1 << self.heading[k, back]
            deeper = k + 1 < self.paddles
            self.tried[k[deeper] + 1, back[deeper]] = 0
            self.placed[back] -= 1
            depth -= 1

    def run(self, rng: np.random.Generator) -> None:
        while len(self.active()):
            self.step(rng)


def draw_targets(rng: np.random.Generator, n: int, cfg: PathfinderConfig) -> tuple[Drawing, np.ndarray]:
    """Up to ``n`` images with their two target snakes, grown a paddle at a time in turn (as LRA does), with a
    marker's room at both ends of each: the first start uniform at least ``seed_margin`` from the border, the
    second ``seed_distance`` away in a uniform direction (LRA). Returns the drawing of the images where both
    snakes fit and the snakes' ends ``[k, 2 snakes, (start, end), 2]`` in image coordinates."""
    g, margin = cfg.grid, cfg.seed_margin
    first = rng.integers(margin, g - margin, (n, 2)) + MARGIN
    around_first = rng.uniform(0, 2 * np.pi, n)
    second = np.floor(first + cfg.seed_distance * np.stack([np.sin(around_first), np.cos(around_first)], -1) + 0.5)
    tails = np.stack([first, second.astype(np.int64)], 1)                                      # [n, 2, 2]
    rows, state = np.arange(n), Drawing(n, g, snakes=2)
    ok = np.ones(n, bool)
    for s in (0, 1):                                           # the start markers: inside, clear of each other
        my, mx = around(DISC, tails[:, s, 0], tails[:, s, 1])
        ok &= ~state.bad(rows, my, mx, 0, s).any(0)
        state.claim(rows, my, mx, np.zeros(n, np.int64), s)
    walks = [Walk(state, s, rows, tails[:, s], cfg.contour_length, cfg.continuity, end_marker=True) for s in (0, 1)]
    for w in walks:
        w.failed |= ~ok
    while any(len(w.active()) for w in walks):
        for w in walks:
            w.step(rng)
        walks[0].failed |= walks[1].failed
        walks[1].failed |= walks[0].failed
    ends = np.zeros((n, 2, 2, 2), np.int64)
    ends[:, :, 0] = tails
    for s, w in enumerate(walks):
        ends[:, s, 1] = np.stack([w.y[-1, -1], w.x[-1, -1]], -1)
        state.draw(rows, w.y, w.x, STROKE)
        markers = [around(DISC, ends[:, s, e, 0], ends[:, s, e, 1]) for e in (0, 1)]
        state.finish(rows, np.concatenate([w.y.reshape(-1, n), markers[0][0], markers[1][0]]),
                     np.concatenate([w.x.reshape(-1, n), markers[0][1], markers[1][1]]), s)
    keep = np.flatnonzero(~walks[0].failed)
    return state.subset(keep), ends[keep] - MARGIN


def add_distractors(rng: np.random.Generator, state: Drawing, cfg: PathfinderConfig) -> None:
    """Draw ``cfg.distractors`` short snakes into every image, each from a uniform free pixel at a uniform heading,
    redrawn up to DISTRACTOR_TRIES times, then left out (LRA allows incomplete distractor sets)."""
    length, count = cfg.distractors
    for _ in range(count):
        todo = np.arange(state.n)
        for _ in range(DISTRACTOR_TRIES):
            rows, tail = _free_pixels(rng, state, todo)
            walk = Walk(state, 0, rows, tail, length, cfg.continuity, undo=DISTRACTOR_UNDO)
            walk.run(rng)
            done = ~walk.failed
            state.finish(rows, walk.y, walk.x, 0, done)
            state.draw(rows[done], walk.y[..., done], walk.x[..., done], STROKE)
            todo = np.setdiff1d(todo, rows[done])
            if not len(todo):
                break


def _free_pixels(rng: np.random.Generator, state: Drawing, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A uniform free pixel ``[k, 2]`` (canvas coordinates) of each image ``rows`` where one of PIXEL_TRIES
    uniform draws is free, and those images ``[k]``."""
    found, tail = np.zeros(len(rows), bool), np.zeros((len(rows), 2), np.int64)
    for _ in range(PIXEL_TRIES):
        todo = np.flatnonzero(~found)
        pix = rng.integers(MARGIN, MARGIN + state.g, (len(todo), 2))
        free = state.free(rows[todo], pix[:, 0], pix[:, 1])
        tail[todo[free]], found[todo[free]] = pix[free], True
    return rows[found], tail[found]
