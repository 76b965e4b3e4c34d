"""Train / valid / test rows of a series, as Informer's code cuts them (zhouhaoyi/Informer2020,
``data/data_loader.py``).

Each split owns the rows ``[begin, end)`` its windows predict. Its windows read their inputs from ``lookback`` rows
earlier, so the valid and test windows' inputs start ``lookback`` rows before the split (Informer's
``border1s = [0, 12*30*24 - seq_len, 12*30*24 + 4*30*24 - seq_len]``), while a training window's input never
starts before row 0 (its first prediction is row ``lookback``). No window predicts a row outside its split.

- ``ett_hour`` (``Dataset_ETT_hour``): 12 / 4 / 4 months of 30 days: [0, 8640), [8640, 11520), [11520, 14400).
  ETTh's rows from 14400 on (17,420 in all) belong to no split, as in Informer.
- ``ett_minute`` (``Dataset_ETT_minute``): the same months at 4 rows an hour.
- ``ratio`` (``Dataset_Custom``): ``int(0.7 n)`` train rows, then ``n - int(0.7 n) - int(0.2 n)`` valid, then
  ``int(0.2 n)`` test.
"""
from __future__ import annotations

from pathlib import Path

from ...config import ConfigError
from .config import ForecastConfig

SPLITS = ("train", "valid", "test")
MONTH = 30 * 24                      # hours in one of ETT's months


def split_rule(cfg: ForecastConfig) -> str:
    """``cfg.split_rule``, with ``auto`` resolved: ETT's months for ETTh1/ETTh2 and CSVs named ``ETTh*`` /
    ``ETTm*``, 70 / 10 / 20 otherwise."""
    if cfg.split_rule != "auto":
        return cfg.split_rule
    if cfg.source in ("etth1", "etth2"):
        return "ett_hour"
    name = Path(cfg.data).name if cfg.source == "csv" else ""
    return "ett_hour" if name.startswith("ETTh") else "ett_minute" if name.startswith("ETTm") else "ratio"


def split_ranges(rule: str, n_rows: int, name: str) -> dict[str, tuple[int, int]]:
    """The rows ``[begin, end)`` of every split of a series of ``n_rows`` rows under ``rule``; a ConfigError
    when the series is shorter than the rule needs."""
    if rule == "ratio":
        train, test = int(n_rows * 0.7), int(n_rows * 0.2)
        ends = (train, n_rows - test, n_rows)
    else:
        per_hour = 1 if rule == "ett_hour" else 4
        ends = (12 * MONTH * per_hour, 16 * MONTH * per_hour, 20 * MONTH * per_hour)
        if n_rows < ends[-1]:
            raise ConfigError(f"{name} has {n_rows} rows; forecast.split_rule={rule} needs {ends[-1]} "
                              "(12 / 4 / 4 months of 30 days): use split_rule=ratio for other data")
    begins = (0, *ends[:-1])
    return dict(zip(SPLITS, zip(begins, ends, strict=True), strict=True))


def first_input_row(split: str, begin: int, lookback: int) -> int:
    """The row where the first window of ``split`` starts reading: 0 for train, ``begin - lookback`` else."""
    return 0 if split == "train" else begin - lookback


def check_fits(cfg: ForecastConfig, ranges: dict[str, tuple[int, int]], name: str) -> None:
    """Raise a ConfigError naming ``forecast.horizon`` and the split's length unless every split holds a window."""
    L, H = cfg.lookback, cfg.horizon
    begin, end = ranges["train"]
    if end - begin < L + H:
        fix = f"use horizon <= {end - begin - L}" if end - begin > L else f"use lookback + horizon <= {end - begin}"
        raise ConfigError(f"forecast.horizon={H} with forecast.lookback={L} does not fit the train split of {name}: "
                          f"it holds {end - begin} rows and a window needs lookback + horizon = {L + H}; {fix}")
    for split in SPLITS[1:]:
        begin, end = ranges[split]
        if end - begin < H:
            raise ConfigError(f"forecast.horizon={H} is longer than the {split} split of {name}: it holds "
                              f"{end - begin} rows (rows {begin} to {end - 1}) and every predicted step must lie "
                              f"inside it; use horizon <= {end - begin}")
