"""Strict dataclass configs: unknown keys, wrong types and out-of-range numbers are errors that name the key and
say what is allowed.

A config class declares the allowed range of each of its numeric fields in a class variable ``RANGES``, in interval
notation (``"[1, inf)"``: an integer or float >= 1; ``"(0, 1)"``; ``"[0, inf]"`` also allows infinity). For a
list field the range applies to every item, and the list must not be empty. Rules across fields go in a method
``check()``. ``from_dict`` checks the ranges and rules of every config it builds; ``check_ranges`` checks an
existing (possibly edited) config.
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
import types
import typing
from typing import Any, TypeVar

C = TypeVar("C")


class ConfigError(ValueError):
    """A configuration value or key that is not allowed; the message says what is allowed."""


_INTERVAL = re.compile(r"^([\[(])\s*(-inf|[-+.\deE]+)\s*,\s*(inf|[-+.\deE]+)\s*([\])])$")


@dataclasses.dataclass(frozen=True)
class Interval:
    """An interval of allowed numbers, written ``[low, high]`` with ``(`` / ``)`` for open ends; NaN is never in
    one, and infinity only where an end is ``inf]`` or ``[-inf``."""

    text: str

    def __post_init__(self) -> None:
        if not _INTERVAL.match(self.text):
            raise ValueError(f"{self.text!r} is not an interval such as '[1, inf)' or '(0, 1]'")

    def __contains__(self, value: float) -> bool:
        left, low, high, right = _INTERVAL.match(self.text).groups()
        low, high = float(low), float(high)
        above = value >= low if left == "[" else value > low
        below = value <= high if right == "]" else value < high
        return above and below

    def describe(self, integer: bool = False) -> str:
        """The interval in words: ``an integer >= 1``, ``a number > 0 and < 1``, ``a finite number > 0``."""
        left, low, high, right = _INTERVAL.match(self.text).groups()
        parts = []
        if low != "-inf":
            parts.append(f"{'>=' if left == '[' else '>'} {low}")
        if high != "inf":
            parts.append(f"{'<=' if right == ']' else '<'} {high}")
        kind = "an integer" if integer else "a number" if right == "]" or high != "inf" else "a finite number"
        return " ".join([kind, " and ".join(parts)]).strip()


def check_range(where: str, interval: str, value: Any) -> None:
    """Raise ConfigError naming ``where`` unless ``value`` (a number, or every item of a non-empty list) lies in
    ``interval``."""
    allowed = Interval(interval)
    if isinstance(value, (list, tuple)):
        if not value:
            raise ConfigError(f"{where} must not be empty: give at least one value in {interval}")
        for i, item in enumerate(value):
            check_range(f"{where}[{i}]", interval, item)
        return
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not number or math.isnan(value) or value not in allowed:
        raise ConfigError(f"{where}={value!r} is out of range: it must be "
                          f"{allowed.describe(isinstance(value, int))} (allowed: {interval})")


def numeric_fields(cls: type) -> list[str]:
    """The fields of config class ``cls`` that hold numbers (int or float, or lists of them; not bools)."""
    def numeric(tp: Any) -> bool:
        if typing.get_origin(tp) in (list, tuple, typing.Union, types.UnionType):
            return any(numeric(a) for a in typing.get_args(tp))
        return tp in (int, float)
    return [name for name, tp in _field_types(cls).items() if numeric(tp)]


def check_ranges(cfg: Any, where: str = "") -> None:
    """Check every declared range of the dataclass config ``cfg`` and, recursively, of the configs it holds;
    then its own ``check()`` (cross-field rules), if it has one."""
    ranges = getattr(type(cfg), "RANGES", {})
    for f in dataclasses.fields(cfg):
        value, name = getattr(cfg, f.name), f"{where}.{f.name}" if where else f.name
        if dataclasses.is_dataclass(value):
            check_ranges(value, name)
        elif f.name in ranges and value is not None:
            check_range(name, ranges[f.name], value)
    if callable(getattr(cfg, "check", None)):
        cfg.check()


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _check_value(where: str, tp: Any, value: Any) -> Any:
    """Return ``value`` coerced to ``tp`` (int -> float allowed), or raise ConfigError naming ``where``."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        (config, *more) = [a for a in typing.get_args(tp) if dataclasses.is_dataclass(a)] or [None]
        if value is not None and config is not None and not more and type(None) in typing.get_args(tp):
            return _check_value(where, config, value)   # an optional config: its own error names the key
        for option in typing.get_args(tp):
            try:
                return _check_value(where, option, value)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: {value!r} is not a {tp}")
    if tp is type(None):
        if value is None:
            return None
        raise ConfigError(f"{where}: expected None, got {value!r}")
    if origin is typing.Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ConfigError(f"{where}: {value!r} is not allowed; choose one of {', '.join(map(repr, allowed))}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item_tp, *_) = typing.get_args(tp) or (Any,)
        items = [_check_value(f"{where}[{i}]", item_tp, v) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping for {tp.__name__}, got {value!r}")
        return from_dict(tp, value, where=where)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is bool and not isinstance(value, bool):
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if tp is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"{where}: expected {tp.__name__}, got {type(value).__name__} {value!r}")
    return value


def from_dict(cls: type[C], data: dict[str, Any], where: str = "") -> C:
    """Build dataclass ``cls`` from a plain dict, rejecting unknown keys and mistyped values."""
    types_ = _field_types(cls)
    unknown = sorted(set(data) - set(types_))
    if unknown:
        key = f"{where}.{unknown[0]}" if where else unknown[0]
        raise ConfigError(f"unknown config key {key!r} for {cls.__name__}; valid keys: {', '.join(sorted(types_))}")
    kwargs = {k: _check_value(f"{where}.{k}" if where else k, types_[k], v) for k, v in data.items()}
    cfg = cls(**kwargs)
    check_ranges(cfg, where)
    return cfg


def read_json_object(file: Any, note: str = "") -> dict[str, Any]:
    """The JSON object in ``file`` (a path); text that is not UTF-8 JSON, or JSON that is not an object, is a
    ConfigError that names the file, with ``note`` (what that suggests) appended."""
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"{file} is not valid UTF-8 JSON ({e}){note}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{file} holds a JSON {type(data).__name__}, not an object{note}")
    return data


def to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a (nested) dataclass config."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def parse_value(text: str) -> Any:
    """Parse a command-line value: JSON where it parses (numbers, true/false, null, lists), ``nan`` and ``inf`` as
    floats (so that a range check, not a type check, rejects them), else the raw string."""
    if text.strip().lower() in ("nan", "inf", "+inf", "-inf", "infinity", "-infinity"):
        return float(text)
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def apply_overrides(cfg: C, overrides: list[str], values: dict[str, Any] | None = None) -> C:
    """Apply ``a.b=value`` overrides to a nested dataclass config and re-validate the whole of it, once.

    ``model.d_model=64`` sets a field; a path through a dict field (``model.mixer_options.gla.expand_k=1``)
    creates the nested keys, which the mixer validates when it is built. ``values`` (path -> value) are set as
    given, without parsing (a mixer schedule, a folder name), before the overrides.
    """
    data = to_dict(cfg)
    items = [(path, value) for path, value in (values or {}).items()]
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key.path=value")
        path, raw = item.split("=", 1)
        items.append((path.strip(), parse_value(raw)))
    for path, value in items:
        keys = path.split(".")
        node = data
        for depth, key in enumerate(keys):
            if not isinstance(node, dict):
                raise ConfigError(f"config key {'.'.join(keys[:depth])!r} holds a value, not fields; {path!r} "
                                  "cannot be set")
            if key not in node and depth == 0:
                raise ConfigError(f"unknown config key {key!r}; valid keys: {', '.join(node)}")
            if depth < len(keys) - 1:
                node = node.setdefault(key, {})
        node[keys[-1]] = value
    return from_dict(type(cfg), data)
