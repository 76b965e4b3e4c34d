"""The value types of the ``gatelab`` command's flags: each parses one argument or raises argparse's error with
what is allowed, so a bad flag is reported before anything runs."""
from __future__ import annotations

import argparse
from collections.abc import Callable

from .config import ConfigError, Interval
from .models.lm import parse_schedule
from .registry import CHANNEL_MIXERS, MIXERS, RESIDUALS
from .tasks.text.assets import SOURCES


def number(kind: type, interval: str) -> Callable[[str], float]:
    """An argparse type: a number of ``kind`` in ``interval``, else an error that says what is allowed."""
    allowed = Interval(interval)

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if value != value or value not in allowed:
            raise argparse.ArgumentTypeError(f"{text} is out of range: it must be "
                                             f"{allowed.describe(kind is int)} (allowed: {interval})")
        return value

    return parse


def number_list(kind: type, interval: str) -> Callable[[str], list]:
    """An argparse type: a non-empty comma-separated list of numbers of ``kind`` in ``interval``."""
    one = number(kind, interval)

    def parse(text: str) -> list:
        items = [x.strip() for x in text.split(",")]
        if not any(items):
            raise argparse.ArgumentTypeError("the list is empty: give comma-separated values, e.g. 64,128")
        if not all(items):
            raise argparse.ArgumentTypeError(f"{text!r} has an empty item: give comma-separated values, e.g. 64,128")
        return [one(x) for x in items]

    return parse


def mixer_list(text: str) -> list[str]:
    """Comma-separated mixers for compare; each may be a key or a hybrid ratio such as gdn:gated_attn=3:1."""
    return _key_list(text, "mixer keys or hybrid ratios, e.g. attn,gla,gdn:gated_attn=3:1", parse_schedule,
                     MIXERS.names())


def channel_list(text: str) -> list[str]:
    """Comma-separated channel mixers for compare (``none`` allowed); each may be a schedule ratio (swiglu:moe=1:1)."""
    return _key_list(text, "channel mixer keys", lambda n: parse_schedule(n, CHANNEL_MIXERS, allowed=("none",)),
                     CHANNEL_MIXERS.names())


def residual_list(text: str) -> list[str]:
    """Comma-separated residual connections for compare."""
    return _key_list(text, "residual connection keys", RESIDUALS.get, RESIDUALS.names())


def _key_list(text: str, what: str, check: Callable[[str], object], registered: list[str]) -> list[str]:
    """A non-empty comma-separated list whose every item ``check`` accepts; its ConfigError or KeyError becomes
    argparse's error, and an empty list or item says what to give and what is registered."""
    names = [x.strip() for x in text.split(",")]
    if not all(names):
        problem = "the list is empty" if not any(names) else f"{text!r} has an empty item"
        raise argparse.ArgumentTypeError(f"{problem}: give comma-separated {what} "
                                         f"(registered: {', '.join(registered)})")
    for n in names:
        try:
            check(n)
        except (ConfigError, KeyError) as e:
            raise argparse.ArgumentTypeError(e.args[0]) from None
    return names


def asset_name(text: str) -> str:
    if text not in SOURCES:
        raise argparse.ArgumentTypeError(f"unknown asset {text!r}; choose from {', '.join(SOURCES)}")
    return text


def bit_widths(text: str) -> tuple[tuple[int, int], ...]:
    """``--bits``: comma-separated ``weight:activation`` widths, each between 2 and 16."""
    bits = []
    for pair in text.split(","):
        parts = pair.strip().split(":")
        if len(parts) != 2 or not all(p.strip().isdigit() and 2 <= int(p) <= 16 for p in parts):
            raise argparse.ArgumentTypeError(f"{text!r}: give weight:activation widths between 2 and 16, e.g. 8:8,4:8")
        bits.append((int(parts[0]), int(parts[1])))
    return tuple(bits)


def linearize_targets(text: str) -> list[str]:
    """``linearize --to``: comma-separated linearization targets, each once."""
    from .pretrained.linearize import TARGETS

    def check(name: str) -> None:
        if name not in TARGETS:
            raise KeyError(f"unknown target {name!r}; choose from {', '.join(TARGETS)}")

    names = _key_list(text, "targets", check, list(TARGETS))
    if len(set(names)) < len(names):
        raise argparse.ArgumentTypeError(f"{text!r} names a target twice")
    return names
