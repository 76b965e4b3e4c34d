"""The forecasting task's data: one split of a standardised series and the (input, target) windows it yields.

Window i reads rows ``starts[i] .. starts[i] + lookback - 1`` of the split's series as ``x`` and predicts the next
``horizon`` rows as ``y`` (``y`` starts right after ``x`` ends), as ``Dataset_ETT_hour.__getitem__`` of
Informer's code does (``seq_x``, and ``seq_y`` without its ``label_len`` start tokens).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ...config import ConfigError, check_ranges
from .config import ForecastConfig
from .scaler import Scaler
from .sources import load_table
from .splits import SPLITS, check_fits, first_input_row, split_ranges, split_rule


@dataclass
class ForecastWindows:
    """One split's windows.

    - ``series``: ``[T_split, C]`` float32, the standardised rows the split's windows read (for valid and test
      these begin ``lookback`` rows before the split). C = ``n_variates``; the target is the last column.
    - ``starts``: ``[N]`` int64, the row of ``series`` where each window's input starts.
    - ``y_from``: targets are columns ``y_from:`` of ``series`` (C - 1 for ``MS``, else 0).
    - ``first_row``: the row of the source table that ``series[0]`` is; ``times``: ``[T_split]`` datetime64[s].
    - ``scaler``: the training split's per-variate mean and std (``scaler.as_dict()`` for a report).

    ``windows[idx]`` with ``idx`` an int64 tensor ``[B]`` returns ``x [B, lookback, C]`` and
    ``y [B, horizon, C - y_from]`` (a scalar index drops the batch dimension).
    """

    series: torch.Tensor
    starts: torch.Tensor
    lookback: int
    horizon: int
    y_from: int
    columns: tuple[str, ...]
    scaler: Scaler
    first_row: int
    times: np.ndarray

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, idx: torch.Tensor | int) -> tuple[torch.Tensor, torch.Tensor]:
        starts = self.starts[torch.as_tensor(idx, dtype=torch.long)]                  # (B,)
        steps = torch.arange(self.lookback + self.horizon)                           # (L + H,)
        rows = self.series[starts[..., None] + steps]                                # (B, L + H, C)
        return rows[..., :self.lookback, :], rows[..., self.lookback:, self.y_from:]

    @property
    def y_columns(self) -> tuple[str, ...]:
        return self.columns[self.y_from:]


def spread(n: int, cap: int) -> np.ndarray:
    """``cap`` indices of ``range(n)`` evenly spaced from the first to the last (all of them when ``cap`` is 0 or
    at least ``n``)."""
    if cap == 0 or cap >= n:
        return np.arange(n)
    return np.linspace(0, n - 1, cap).round().astype(np.int64)


def forecast_data(cfg: ForecastConfig, split: str) -> ForecastWindows:
    """The windows of ``split`` (``train``, ``valid`` or ``test``) of ``cfg.data``. Deterministic in ``cfg``.

    Standardised with the mean and std of the training rows only; the split's rows are ``split_rule`` 's (ETT's
    12 / 4 / 4 months, or 70 / 10 / 20). Training windows step by ``stride`` and are capped at ``train_windows``;
    valid and test windows step by 1 and are capped at ``eval_windows`` (a cap keeps windows evenly spaced over
    the split). A horizon that does not fit every split is a ConfigError before any window is built.
    """
    check_ranges(cfg, "forecast")
    if split not in SPLITS:
        raise ConfigError(f"forecast: split must be one of {', '.join(SPLITS)}; got {split!r}")
    table = load_table(cfg)
    columns = table.columns[-1:] if cfg.features == "S" else table.columns
    values = table.values[:, -len(columns):]                                          # (T, C) target last
    ranges = split_ranges(split_rule(cfg), len(table), table.name)
    check_fits(cfg, ranges, table.name)
    train_begin, train_end = ranges["train"]
    scaler = Scaler.fit(values[train_begin:train_end], columns)
    begin, end = ranges[split]
    first = first_input_row(split, begin, cfg.lookback)
    series = torch.from_numpy(scaler.transform(values[first:end]).astype(np.float32))
    n = end - first - cfg.lookback - cfg.horizon + 1
    train = split == "train"
    starts = np.arange(0, n, cfg.stride if train else 1)
    starts = starts[spread(len(starts), cfg.train_windows if train else cfg.eval_windows)]
    return ForecastWindows(series=series, starts=torch.from_numpy(starts), lookback=cfg.lookback,
                           horizon=cfg.horizon, y_from=len(columns) - 1 if cfg.features == "MS" else 0,
                           columns=tuple(columns), scaler=scaler, first_row=first, times=table.times[first:end])
