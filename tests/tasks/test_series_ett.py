"""ETTh1 / ETTh2 as Informer's code splits and scales them, checked against the raw CSVs read here with numpy.

The CSVs (CC BY-ND 4.0) are never copied into the repository: they are read from ``$GATELAB_ETT_DIR`` or from
``../shared/data/ett`` beside the repository root, and these tests skip when neither holds them.
"""
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from gatelab.tasks.series import SPLITS, ForecastConfig, forecast_data, split_ranges

CANDIDATES = [os.environ.get("GATELAB_ETT_DIR"), Path(__file__).parents[2] / ".." / "shared" / "data" / "ett"]
ETT_DIR = next((Path(d) for d in CANDIDATES if d and (Path(d) / "ETTh1.csv").is_file()), None)
pytestmark = pytest.mark.skipif(ETT_DIR is None, reason="ETTh1.csv/ETTh2.csv not found in $GATELAB_ETT_DIR nor in "
                                "../shared/data/ett (ETT-small of https://github.com/zhouhaoyi/ETDataset)")

def raw(name: str = "ETTh1.csv") -> np.ndarray:
    """The seven variates HUFL .. OT of an ETT CSV, ``[17420, 7]`` float64."""
    return np.loadtxt(ETT_DIR / name, delimiter=",", skiprows=1, usecols=range(1, 8))


def cfg(**kw) -> ForecastConfig:
    return ForecastConfig(**{"data": "etth1", "ett_dir": str(ETT_DIR), **kw})


@pytest.mark.parametrize("horizon,sizes", [(24, (8521, 2857, 2857)), (720, (7825, 2161, 2161))])
def test_splits_are_informers_12_4_4_months(horizon, sizes):
    assert split_ranges("ett_hour", 17420, "ETTh1") == {"train": (0, 8640), "valid": (8640, 11520),
                                                       "test": (11520, 14400)}
    start = np.datetime64("2016-07-01T00:00")
    for split, begin, end, first, n in zip(SPLITS, (0, 8640, 11520), (8640, 11520, 14400), (0, 8544, 11424), sizes,
                                           strict=True):
        w = forecast_data(cfg(horizon=horizon), split)
        assert (w.first_row, len(w), len(w.series)) == (first, n, end - first)
        first_target = w.first_row + int(w.starts[0]) + 96
        last_target = w.first_row + int(w.starts[-1]) + 96 + horizon - 1
        assert (first_target, last_target) == (max(begin, 96), end - 1)
        assert w.times[first_target - first] == start + np.timedelta64(max(begin, 96), "h")


@pytest.mark.parametrize("features", ["S", "M", "MS"])
def test_windows_are_the_standardised_raw_rows(features):
    values = raw()
    mean, std = values[:8640].mean(0), values[:8640].std(0)
    z = (values - mean) / std
    out = slice(0, 7) if features == "M" else slice(6, 7)
    inp = slice(6, 7) if features == "S" else slice(0, 7)
    for split in SPLITS:
        w = forecast_data(cfg(features=features, horizon=48), split)
        idx = torch.tensor([0, 1, len(w) // 3, len(w) - 1])
        x, y = w[idx]
        for b, i in enumerate(idx.tolist()):
            s = w.first_row + int(w.starts[i])
            np.testing.assert_allclose(x[b].numpy(), z[s:s + 96, inp], rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(y[b].numpy(), z[s + 96:s + 96 + 48, out], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(w.scaler.mean, mean[inp])
        np.testing.assert_allclose(w.scaler.std, std[inp])


@pytest.mark.parametrize("horizon", [24, 168, 720])
def test_no_window_predicts_a_row_outside_its_split(horizon):
    for split, (begin, end) in split_ranges("ett_hour", 17420, "ETTh1").items():
        w = forecast_data(cfg(data="etth2", lookback=336, horizon=horizon), split)
        inputs = w.first_row + w.starts
        targets = inputs + 336
        assert targets.min() >= max(begin, 336) and (targets + horizon - 1).max() == end - 1
        assert inputs.min() == (0 if split == "train" else begin - 336)


def test_scaler_ignores_the_valid_and_test_rows(tmp_path):
    copy = tmp_path / "ETTh1.csv"                      # a temporary copy, edited from the valid split on
    lines = (ETT_DIR / "ETTh1.csv").read_text().splitlines()
    for i in range(1 + 8640, len(lines)):
        date, *cells = lines[i].split(",")
        lines[i] = ",".join([date, *(repr(float(c) * 10 + 3) for c in cells)])
    copy.write_text("\n".join(lines) + "\n")
    for features in ("S", "M"):
        a = forecast_data(cfg(features=features), "train")
        b = forecast_data(ForecastConfig(data=str(copy), features=features), "train")
        np.testing.assert_allclose(b.scaler.mean, a.scaler.mean, rtol=1e-12)
        np.testing.assert_allclose(b.scaler.std, a.scaler.std, rtol=1e-12)
        torch.testing.assert_close(b.series, a.series)
        assert not torch.allclose(forecast_data(ForecastConfig(data=str(copy), features=features), "valid").series,
                                  forecast_data(cfg(features=features), "valid").series)


def test_name_and_path_give_the_same_windows(tmp_path):
    shutil.copyfile(ETT_DIR / "ETTh2.csv", tmp_path / "ETTh2.csv")
    a = forecast_data(cfg(data="etth2", features="MS"), "test")
    b = forecast_data(ForecastConfig(data=str(tmp_path / "ETTh2.csv"), features="MS"), "test")
    assert torch.equal(a.series, b.series) and torch.equal(a.starts, b.starts) and a.y_columns == ("OT",)


def test_informers_univariate_lookback_720_fits():
    w = forecast_data(cfg(lookback=720, horizon=720), "test")
    assert w.first_row == 11520 - 720 and len(w) == 2880 - 720 + 1
