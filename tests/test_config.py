import dataclasses
import math
import re
import typing

import pytest

from gatelab.config import ConfigError, Interval, apply_overrides, check_ranges, from_dict, numeric_fields, to_dict
from gatelab.train import TrainConfig
from tests.utils import values_outside


def test_round_trip():
    cfg = TrainConfig()
    assert from_dict(TrainConfig, to_dict(cfg)) == cfg


def test_unknown_key_names_it_and_lists_valid_ones():
    with pytest.raises(ConfigError, match=r"unknown config key 'model.d_modle'.*valid keys: .*d_model"):
        from_dict(TrainConfig, {"model": {"d_modle": 3}})


def test_wrong_type_names_the_key():
    with pytest.raises(ConfigError, match="model.d_model: expected an integer"):
        from_dict(TrainConfig, {"model": {"d_model": "big"}})
    with pytest.raises(ConfigError, match="batch_size: expected an integer"):
        from_dict(TrainConfig, {"batch_size": 3.5})


def test_overrides():
    cfg = apply_overrides(TrainConfig(), ["model.d_model=32", "optim.lr=3e-3", "mqar.seq_lens=[64,128]",
                                          "model.mixer_options.gla.expand_k=1.0", "model.mixer=gla"])
    assert cfg.model.d_model == 32 and cfg.optim.lr == 3e-3 and cfg.mqar.seq_lens == [64, 128]
    assert cfg.model.mixer_options == {"gla": {"expand_k": 1.0}}
    with pytest.raises(ConfigError, match="unknown config key 'modle'"):
        apply_overrides(TrainConfig(), ["modle.d_model=3"])
    with pytest.raises(ConfigError, match="key.path=value"):
        apply_overrides(TrainConfig(), ["model.d_model"])


def _user_configs() -> list[type]:
    """Every config class a user sets: TrainConfig and the configs nested in it, MQAR slices, compare grids."""
    from gatelab.presets import CompareGrid
    from gatelab.tasks.mqar import MQARConfig

    found, todo = [], [TrainConfig, MQARConfig, CompareGrid]
    while todo:
        cls = todo.pop()
        if cls not in found:
            found.append(cls)
            todo += [f.default_factory().__class__ for f in dataclasses.fields(cls)
                     if f.default_factory is not dataclasses.MISSING and dataclasses.is_dataclass(f.default_factory())]
    return found


def test_every_numeric_field_of_every_user_config_has_a_range():
    classes = {cls.__name__ for cls in _user_configs()}
    assert {"TrainConfig", "MQARTaskConfig", "LMTaskConfig", "ModelConfig", "OptimConfig", "MQARConfig",
            "CompareGrid", "ListOpsConfig", "LRATextConfig", "PathfinderConfig", "LRAImageConfig",
            "SelectiveCopyingConfig", "InductionHeadsConfig", "ForecastConfig", "ClassifierConfig",
            "ForecasterConfig", "LoRAConfig"} <= classes
    for cls in _user_configs():
        ranges = getattr(cls, "RANGES", {})
        assert sorted(ranges) == sorted(numeric_fields(cls)), cls.__name__   # every number, and no stale name
        for interval in ranges.values():
            Interval(interval)   # parses


def _range_cases() -> list[tuple[type, str, object]]:
    """For every declared range, a value just outside it (or NaN)."""
    cases = []
    for cls in _user_configs():
        types = {f.name: f.type for f in dataclasses.fields(cls)}
        for name, interval in getattr(cls, "RANGES", {}).items():
            low, high = (float(x) for x in interval[1:-1].split(","))
            integer = "int" in str(types[name])
            bad = (low - 1 if interval[0] == "[" else low) if low > -math.inf else high + 1
            value = int(bad) if integer else (math.nan if name.endswith("_frac") else bad)
            cases.append((cls, name, [value] if "list" in str(types[name]) else value))
    return cases


@pytest.mark.parametrize(("cls", "name", "value"), _range_cases(),
                         ids=[f"{c.__name__}.{n}" for c, n, _ in _range_cases()])
def test_every_range_is_enforced_with_a_message_that_names_field_value_and_range(cls, name, value):
    from gatelab.presets import preset

    if cls.__name__ == "CompareGrid":
        grid = preset("quick")
        setattr(grid, name, value)
        with pytest.raises(ConfigError, match=rf"{name}.*out of range.*allowed: "):
            grid.runs()
        return
    with pytest.raises(ConfigError, match=rf"{name}(\[0\])?={re.escape(repr(value).strip('[]'))} is out of range: "
                                          rf"it must be .* \(allowed: {re.escape(cls.RANGES[name])}\)"):
        from_dict(cls, {name: value})


def test_defaults_lie_in_their_ranges():
    for cls in _user_configs():
        if cls.__name__ != "CompareGrid":
            check_ranges(cls())


def test_intervals_read_as_words():
    assert Interval("[1, inf)").describe(integer=True) == "an integer >= 1"
    assert Interval("(0, inf)").describe() == "a finite number > 0"
    assert Interval("[0, 1)").describe() == "a number >= 0 and < 1"
    assert 1.0 not in Interval("[0, 1)") and math.inf in Interval("[0, inf]") and math.inf not in Interval("[0, inf)")
    with pytest.raises(ValueError, match="not an interval"):
        Interval("1..2")


def test_nan_and_inf_on_the_command_line_are_numbers_that_the_range_rejects():
    with pytest.raises(ConfigError, match=r"optim\.lr=nan is out of range"):
        apply_overrides(TrainConfig(), ["optim.lr=nan"])
    with pytest.raises(ConfigError, match=r"optim\.grad_clip=inf is out of range"):
        apply_overrides(TrainConfig(), ["optim.grad_clip=inf"])


def test_overrides_are_checked_together_not_one_by_one():
    cfg = apply_overrides(TrainConfig(), ["model.mixer=gla,gla,gla,attn", "model.n_layers=4"])
    assert cfg.model.schedule() == ["gla", "gla", "gla", "attn"]
    with pytest.raises(ConfigError, match=r"'model\.d_model' holds a value"):
        apply_overrides(TrainConfig(), ["model.d_model.x=1"])


def test_a_config_edited_in_place_is_checked_when_resolved():
    cfg = TrainConfig()
    cfg.batch_size = -4   # the training loop's batches would never end
    with pytest.raises(ConfigError, match=r"batch_size=-4 is out of range"):
        cfg.resolved()
    with pytest.raises(ConfigError, match=r"batch_size=-4 is out of range"):
        TrainConfig(batch_size=-4)


def test_every_numeric_mixer_option_has_a_range():
    from gatelab.layers.token import GateOptions
    from gatelab.registry import MIXERS

    configs = {key: MIXERS.get(key).Config for key in MIXERS.names()} | {"gate": GateOptions}
    missing = [f"{key}.{name}" for key, cls in configs.items() for name in numeric_fields(cls)
               if name not in getattr(cls, "RANGES", {})]
    assert not missing, missing
    for key, cls in configs.items():
        assert sorted(cls.RANGES) == sorted(numeric_fields(cls)), key   # no stale name
        for interval in cls.RANGES.values():
            Interval(interval)
        check_ranges(cls(d_model=16) if key != "gate" else cls())      # the defaults lie in their ranges


def _mixer_option_cases() -> list[tuple[str, str, object, str]]:
    """``(mixer key, option, value, interval)`` for each value just outside each numeric option's range."""
    from gatelab.registry import MIXERS

    cases = []
    for key in MIXERS.names():
        cls = MIXERS.get(key).Config
        hints = typing.get_type_hints(cls)
        for name, interval in cls.RANGES.items():
            integer = int in (hints[name], *typing.get_args(hints[name]))
            cases += [(key, name, value, interval) for value in values_outside(interval, integer)]
    return cases


@pytest.mark.parametrize(("key", "name", "value", "interval"), _mixer_option_cases(),
                         ids=[f"{k}.{n}={v!r}" for k, n, v, _ in _mixer_option_cases()])
def test_every_mixer_option_out_of_range_is_rejected_naming_the_option(key, name, value, interval):
    """As a user builds a mixer: ``MIXERS.get(key)(d_model, **options)`` (what DecoderLM does with
    model.mixer_options); the error names the option, the value and the allowed range."""
    from gatelab.registry import MIXERS

    build = MIXERS.get(key)
    with pytest.raises(ConfigError, match=rf"\.{name}={re.escape(repr(value))} is out of range: it must be .* "
                                          rf"\(allowed: {re.escape(interval)}\)"):
        build(value) if name == "d_model" else build(16, **{name: value})


@pytest.mark.parametrize(("mixer", "options", "named"), [
    ("mamba2", {"expand": 0}, "expand=0"), ("mamba", {"dt_rank": 0}, "dt_rank=0"),
    ("gla", {"gate_low_rank_dim": 0}, "gate_low_rank_dim=0"), ("attn", {"head_dim": 0}, "head_dim=0"),
    ("gla", {"norm_eps": -1.0}, "norm_eps=-1.0"), ("retnet", {"rope_base": -1.0}, "rope_base=-1.0"),
    ("linear_attn", {"eps": -1.0}, "eps=-1.0"), ("based", {"eps": -1.0}, "eps=-1.0"),
    ("gated_attn", {"gate_kind": "scale", "gate_scale": math.inf}, "gate_scale=inf"),
])
def test_mixer_options_out_of_range_fail_at_config_time_through_overrides(mixer, options, named):
    """The options issue 13 found accepted (some trained to NaN), set as on the command line: the config is
    rejected before any data or run folder is made."""
    from gatelab.train.config import check_buildable

    overrides = [f"model.mixer={mixer}", *(f"model.mixer_options.{mixer}.{k}={v}" for k, v in options.items())]
    with pytest.raises(ConfigError, match=re.escape(named)):
        check_buildable(apply_overrides(TrainConfig(), overrides))
