"""Verdicts on a paper's claims at this scale: compare two groups of per-seed values and say whether the claimed
direction is reproduced, contradicted, or not resolved by the seed noise."""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Claim:
    """``treatment`` has a ``lower`` (or ``higher``) ``metric`` than ``control``; ``paper`` quotes the paper's
    numbers for the same comparison."""

    text: str
    metric: str
    control: str
    treatment: str
    direction: Literal["lower", "higher"]
    paper: str


@dataclass(frozen=True)
class Verdict:
    verdict: Literal["reproduced", "not reproduced", "inconclusive"]
    control: tuple[float, float]      # mean, std over seeds
    treatment: tuple[float, float]
    effect: float                     # improvement in the claimed direction (positive: as claimed)
    z: float                          # effect / standard error of the difference of means
    effect_over_noise: float          # effect / pooled seed std


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def judge(control: list[float], treatment: list[float], direction: str, threshold: float = 2.0) -> Verdict:
    """Reproduced when the effect in the claimed direction exceeds ``threshold`` standard errors (Welch), not
    reproduced when the opposite does, inconclusive otherwise (including fewer than two seeds per group)."""
    (mc, sc), (mt, st) = mean_std(control), mean_std(treatment)
    effect = (mc - mt) if direction == "lower" else (mt - mc)
    if len(control) < 2 or len(treatment) < 2:
        return Verdict("inconclusive", (mc, sc), (mt, st), effect, math.nan, math.nan)
    se = math.sqrt(sc**2 / len(control) + st**2 / len(treatment))
    pooled = math.sqrt((sc**2 + st**2) / 2)
    z = effect / se if se > 0 else math.copysign(math.inf, effect) if effect else 0.0
    ratio = effect / pooled if pooled > 0 else math.copysign(math.inf, effect) if effect else 0.0
    verdict = "reproduced" if z >= threshold else "not reproduced" if z <= -threshold else "inconclusive"
    return Verdict(verdict, (mc, sc), (mt, st), effect, z, ratio)
