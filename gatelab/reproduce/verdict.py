"""Verdicts on a paper's claims at this scale: first whether the paper's effect can exist in these runs (the claim's
precondition, measured on the baseline), then whether the claimed direction is reproduced, contradicted, or not
resolved by the seed noise."""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Literal

UNTESTABLE = "untestable here"


@dataclass(frozen=True)
class Precondition:
    """The paper's effect can exist only where ``variant``'s ``metric`` (mean over seeds) is at least ``floor``:
    e.g. a sink must exist in the baseline before a gate can remove it. ``what`` names the condition and
    ``why`` says where the floor comes from."""

    what: str
    metric: str
    variant: str
    floor: float
    why: str

    def check(self, values: list[float]) -> tuple[bool, str]:
        """Whether ``values`` (the variant's per-seed metric) meet the floor, and what was measured, e.g.
        ``"precondition: a sink in the baseline, f_attn of baseline ≥ 0.0698; measured 0.029"``."""
        stated = f"precondition: {self.what}, {self.metric} of {self.variant} ≥ {self.floor:.3g}"
        if not values:
            return False, f"{stated}; nothing measured"
        measured = statistics.fmean(values)
        return measured >= self.floor, f"{stated}; measured {measured:.3g}"

    def describe(self) -> str:
        return f"{self.what}: {self.metric} of {self.variant} at least {self.floor:.4g} ({self.why})"


@dataclass(frozen=True)
class Claim:
    """``treatment`` has a ``lower`` (or ``higher``) ``metric`` than ``control``; ``paper`` quotes the paper's
    numbers for the same comparison; ``precondition``, if any (one, or a tuple that must all hold), must hold for a
    verdict. With ``margin`` the claim is
    one of no loss instead: ``treatment`` is not worse than ``control`` (in the ``direction`` that is better) by
    more than ``margin`` times the control's mean (``judge_no_worse``)."""

    text: str
    metric: str
    control: str
    treatment: str
    direction: Literal["lower", "higher"]
    paper: str
    precondition: Precondition | tuple[Precondition, ...] | None = None
    margin: float | None = None

    @property
    def preconditions(self) -> tuple[Precondition, ...]:
        pre = self.precondition
        return () if pre is None else pre if isinstance(pre, tuple) else (pre,)


@dataclass(frozen=True)
class Verdict:
    verdict: Literal["reproduced", "not reproduced", "inconclusive", "untestable here"]
    control: tuple[float, float]      # mean, std over seeds
    treatment: tuple[float, float]
    effect: float                     # improvement in the claimed direction (positive: as claimed)
    z: float                          # effect / standard error of the difference of means
    effect_over_noise: float          # effect / pooled seed std
    precondition: str = ""            # what the precondition measured ("" when the claim has none)


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample std (0 for one value, NaN for none)."""
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _weighed(control: list[float], treatment: list[float], effect: float, threshold: float) -> Verdict:
    """The verdict on ``effect`` (positive: as claimed) in standard errors of the difference of means (Welch):
    reproduced at ``threshold`` or more, not reproduced at ``-threshold`` or less, inconclusive otherwise and with
    fewer than two seeds per group; also the effect over the pooled seed std."""
    (mc, sc), (mt, st) = mean_std(control), mean_std(treatment)
    if len(control) < 2 or len(treatment) < 2:
        return Verdict("inconclusive", (mc, sc), (mt, st), effect, math.nan, math.nan)
    se = math.sqrt(sc**2 / len(control) + st**2 / len(treatment))
    pooled = math.sqrt((sc**2 + st**2) / 2)
    z = effect / se if se > 0 else math.copysign(math.inf, effect) if effect else 0.0
    ratio = effect / pooled if pooled > 0 else math.copysign(math.inf, effect) if effect else 0.0
    verdict = "reproduced" if z >= threshold else "not reproduced" if z <= -threshold else "inconclusive"
    return Verdict(verdict, (mc, sc), (mt, st), effect, z, ratio)


def judge(control: list[float], treatment: list[float], direction: str, threshold: float = 2.0) -> Verdict:
    """Reproduced when the effect in the claimed direction exceeds ``threshold`` standard errors (Welch), not
    reproduced when the opposite does, inconclusive otherwise (including fewer than two seeds per group)."""
    mc, mt = mean_std(control)[0], mean_std(treatment)[0]
    effect = (mc - mt) if direction == "lower" else (mt - mc)
    return _weighed(control, treatment, effect, threshold)


def judge_no_worse(control: list[float], treatment: list[float], direction: str, margin: float,
                   threshold: float = 2.0) -> Verdict:
    """A claim of no loss: reproduced when the treatment's shortfall (its metric worse than the control's, in the
    direction that is better) is below ``margin`` x the control's mean by more than ``threshold`` standard errors
    (Welch), not reproduced when it exceeds that allowance by as much, inconclusive otherwise. ``effect`` and ``z``
    are those of the allowance left: positive where the treatment is within it."""
    mc, mt = mean_std(control)[0], mean_std(treatment)[0]
    shortfall = (mt - mc) if direction == "lower" else (mc - mt)
    effect = margin * abs(mc) - shortfall
    return _weighed(control, treatment, effect, threshold)


def judge_claim(claim: Claim, groups: dict[str, dict[str, list[float]]]) -> Verdict:
    """The verdict on ``claim`` from per-seed values ``groups[metric][variant]``: "untestable here" when its
    precondition fails (the comparison is still computed and shown), ``judge`` otherwise."""
    by_variant = groups.get(claim.metric, {})
    control, treatment = by_variant.get(claim.control, []), by_variant.get(claim.treatment, [])
    verdict = (judge(control, treatment, claim.direction) if claim.margin is None
               else judge_no_worse(control, treatment, claim.direction, claim.margin))
    if not claim.preconditions:
        return verdict
    checks = [pre.check(groups.get(pre.metric, {}).get(pre.variant, [])) for pre in claim.preconditions]
    met = all(ok for ok, _ in checks)
    sentence = "; ".join(text for ok, text in checks if not ok) if not met else "; ".join(t for _, t in checks)
    return Verdict(verdict.verdict if met else UNTESTABLE, verdict.control, verdict.treatment, verdict.effect,
                   verdict.z, verdict.effect_over_noise, sentence)


def judge_level(value: float, se: float | None, level: float, threshold: float = 2.0) -> Verdict:
    """A claim that a measured ``value`` reaches ``level`` (e.g. a recovered fraction of at least 93%): reproduced
    when ``value - level`` exceeds ``threshold`` standard errors ``se``, not reproduced when it falls short by as
    much, inconclusive otherwise (and without a standard error). ``control`` holds the level, ``treatment`` the
    value and its standard error."""
    effect = value - level
    if se is None or not math.isfinite(se):
        return Verdict("inconclusive", (level, 0.0), (value, math.nan), effect, math.nan, math.nan)
    z = effect / se if se > 0 else math.copysign(math.inf, effect) if effect else 0.0
    verdict = "reproduced" if z >= threshold else "not reproduced" if z <= -threshold else "inconclusive"
    return Verdict(verdict, (level, 0.0), (value, se), effect, z, math.nan)
