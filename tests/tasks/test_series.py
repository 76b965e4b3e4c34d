"""Forecasting data on small CSVs written here and on vic_elec: splits, windows, standardisation, bad input."""
import csv
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from gatelab.config import ConfigError, from_dict
from gatelab.tasks.series import (
    ETT_URL,
    SPLITS,
    ForecastConfig,
    default_ett_dir,
    forecast_data,
    install_ett,
    load_table,
    split_ranges,
    split_rule,
)
from gatelab.tasks.series.ett import ETT_HEADER

COLUMNS = ("load", "OT", "temp")


def make_values(n: int = 1000, c: int = 3) -> np.ndarray:
    """``[n, c]``: noise of growing scale per column on a slow upward trend."""
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, c)) * np.arange(1, c + 1) + np.arange(n)[:, None] / 100


def write_csv(path: Path, values: np.ndarray, columns=COLUMNS) -> np.ndarray:
    """Write ``values`` as a CSV in ETT's format (hourly timestamps, then one column per variate); return them."""
    times = np.datetime64("2020-01-01T00", "h") + np.arange(len(values))
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["date", *columns])
        for t, row in zip(times, values, strict=True):
            w.writerow([str(t).replace("T", " ") + ":00:00", *(repr(float(v)) for v in row)])
    return values


@pytest.fixture
def series_csv(tmp_path):
    path = tmp_path / "series.csv"
    return path, write_csv(path, make_values())


def window_rows(w, i: int) -> tuple[np.ndarray, np.ndarray]:
    """The source-table rows of window i's input and targets."""
    s = w.first_row + int(w.starts[i])
    return np.arange(s, s + w.lookback), np.arange(s + w.lookback, s + w.lookback + w.horizon)


def test_ratio_split_is_70_10_20_and_valid_test_inputs_start_lookback_rows_early(series_csv):
    path, _ = series_csv
    cfg = ForecastConfig(data=str(path), lookback=24, horizon=12)
    assert split_rule(cfg) == "ratio"
    assert split_ranges("ratio", 1000, "x") == {"train": (0, 700), "valid": (700, 800), "test": (800, 1000)}
    sizes = {s: len(forecast_data(cfg, s)) for s in SPLITS}
    assert sizes == {"train": 700 - 24 - 12 + 1, "valid": 100 - 12 + 1, "test": 200 - 12 + 1}
    valid = forecast_data(cfg, "valid")
    assert valid.first_row == 700 - 24 and window_rows(valid, 0)[1][0] == 700
    assert window_rows(valid, len(valid) - 1)[1][-1] == 799


@pytest.mark.parametrize("features", ["S", "M", "MS"])
def test_windows_match_the_raw_series_and_stay_inside_their_split(series_csv, features):
    path, raw = series_csv
    cfg = ForecastConfig(data=str(path), features=features, lookback=24, horizon=12)
    order = [0, 2, 1]                                                       # the target OT goes last
    cols = order[-1:] if features == "S" else order
    out = cols if features == "M" else order[-1:]
    mean, std = raw[:700, cols].mean(0), raw[:700, cols].std(0)
    for split, (begin, end) in split_ranges("ratio", 1000, "x").items():
        w = forecast_data(cfg, split)
        x, y = w[torch.arange(len(w))]
        assert x.shape == (len(w), 24, len(cols)) and y.shape == (len(w), 12, len(out))
        assert x.dtype == y.dtype == torch.float32
        for i in (0, len(w) // 2, len(w) - 1):
            xr, yr = window_rows(w, i)
            assert yr[0] == xr[-1] + 1 and begin <= yr[0] and yr[-1] < end and xr[0] >= max(begin - 24, 0)
            np.testing.assert_allclose(x[i].numpy(), (raw[xr][:, cols] - mean) / std, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(y[i].numpy(), ((raw[yr] - raw[:700].mean(0)) / raw[:700].std(0))[:, out],
                                       rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(w.scaler.inverse_transform(y[i].double(), w.y_columns), raw[yr][:, out],
                                       rtol=1e-5)
        assert w.y_columns == tuple(COLUMNS[c] for c in out)


def test_a_scalar_index_gives_one_unbatched_window(series_csv):
    w = forecast_data(ForecastConfig(data=str(series_csv[0]), features="M", lookback=8, horizon=4), "test")
    x, y = w[3]
    xb, yb = w[torch.tensor([3])]
    assert x.shape == (8, 3) and y.shape == (4, 3) and torch.equal(x, xb[0]) and torch.equal(y, yb[0])


def test_stride_and_caps_keep_evenly_spaced_windows(series_csv):
    path, _ = series_csv
    base = dict(data=str(path), lookback=24, horizon=12)
    full = forecast_data(ForecastConfig(**base), "train")
    strided = forecast_data(ForecastConfig(**base, stride=5), "train")
    assert strided.starts.tolist() == list(range(0, len(full), 5))
    capped = forecast_data(ForecastConfig(**base, train_windows=10), "train")
    assert len(capped) == 10 and capped.starts[0] == 0 and capped.starts[-1] == len(full) - 1
    assert (capped.starts.diff() > 0).all()
    evaluated = forecast_data(ForecastConfig(**base, stride=5, eval_windows=7), "valid")
    assert len(evaluated) == 7 and evaluated.starts[-1] == 100 - 12          # stride is for training only
    assert len(forecast_data(ForecastConfig(**base, eval_windows=7), "train")) == len(full)


def test_scaler_uses_training_rows_only(series_csv, tmp_path):
    path, raw = series_csv
    changed = tmp_path / "changed.csv"
    edited = raw.copy()
    edited[700:] = edited[700:] * 10 + 3                                   # valid and test rows only
    write_csv(changed, edited)
    a = forecast_data(ForecastConfig(data=str(path), features="M"), "train")
    b = forecast_data(ForecastConfig(data=str(changed), features="M"), "train")
    np.testing.assert_array_equal(a.scaler.mean, b.scaler.mean)
    np.testing.assert_array_equal(a.scaler.std, b.scaler.std)
    assert torch.equal(a.series, b.series)
    assert not torch.equal(forecast_data(ForecastConfig(data=str(path)), "test").series,
                           forecast_data(ForecastConfig(data=str(changed)), "test").series)


def test_constant_column_standardises_to_zero(tmp_path):
    path = tmp_path / "c.csv"
    values = make_values(300)
    values[:, 0] = 5.0
    write_csv(path, values)
    w = forecast_data(ForecastConfig(data=str(path), features="M", lookback=8, horizon=4), "train")
    assert w.columns == ("load", "temp", "OT")
    assert torch.isfinite(w.series).all() and (w.series[:, 0] == 0).all() and w.scaler.std[0] == 1


def test_vic_elec_loads_offline(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("no network in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    cfg = ForecastConfig(features="MS")
    table = load_table(cfg)
    assert len(table) == 52608 and table.columns == ("Temperature", "Demand")
    assert table.times[0] == np.datetime64("2011-12-31T13:00") and (np.diff(table.times).astype(int) == 1800).all()
    assert split_ranges(split_rule(cfg), len(table), "vic_elec") == {
        "train": (0, 36825), "valid": (36825, 42087), "test": (42087, 52608)}
    assert cfg.n_variates == 2 and cfg.n_targets == 1 and ForecastConfig().n_variates == 1
    test = forecast_data(cfg, "test")
    x, y = test[torch.tensor([0, len(test) - 1])]
    assert x.shape == (2, 96, 2) and y.shape == (2, 24, 1) and len(test) == 10521 - 24 + 1
    assert 4000 < test.scaler.as_dict()["Demand"]["mean"] < 5500


# ---- bad input ------------------------------------------------------------------------------------------------

def test_horizon_longer_than_a_split_names_horizon_and_the_split_length(series_csv):
    path, _ = series_csv
    with pytest.raises(ConfigError, match=r"(?s)forecast\.horizon=150.*valid split.*100 rows"):
        forecast_data(ForecastConfig(data=str(path), lookback=24, horizon=150), "train")
    with pytest.raises(ConfigError, match=r"(?s)forecast\.horizon=90.*forecast\.lookback=650.*train split.*700 rows"):
        forecast_data(ForecastConfig(data=str(path), lookback=650, horizon=90), "test")


def test_missing_ett_file_says_where_to_get_it(tmp_path, monkeypatch):
    monkeypatch.delenv("GATELAB_ETT_DIR", raising=False)
    with pytest.raises(ConfigError) as err:
        forecast_data(ForecastConfig(data="etth1", ett_dir=str(tmp_path)), "train")
    message = str(err.value)
    for part in ("ETTh1.csv", str(tmp_path), ETT_URL, "ETT-small", "forecast.ett_dir", "--data",
                 "install-data --ett"):
        assert part in message
    with pytest.raises(ConfigError, match=ETT_URL):
        forecast_data(ForecastConfig(data=str(tmp_path / "ETTh2.csv")), "train")


def test_ett_folder_defaults_to_the_environment_then_gatelabs_data_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("GATELAB_ETT_DIR", raising=False)
    monkeypatch.setenv("GATELAB_DATA", str(tmp_path / "home"))
    assert default_ett_dir() == tmp_path / "home" / "ett"
    with pytest.raises(ConfigError, match=rf"not in {tmp_path / 'home' / 'ett'} \(gatelab's data folder\)"):
        forecast_data(ForecastConfig(data="etth2"), "train")
    fake_ett(tmp_path / "mine")
    assert install_ett(tmp_path / "mine", log=lambda _: None)[0] == tmp_path / "home" / "ett" / "ETTh1.csv"
    monkeypatch.setenv("GATELAB_ETT_DIR", str(tmp_path / "env"))
    with pytest.raises(ConfigError, match=rf"not in {tmp_path / 'env'} \(\$GATELAB_ETT_DIR\)"):
        forecast_data(ForecastConfig(data="etth2"), "train")


def test_ett_file_with_another_header_is_refused(tmp_path):
    write_csv(tmp_path / "ETTh1.csv", make_values(20))
    with pytest.raises(ConfigError, match=r"not an ETT file.*date,HUFL"):
        forecast_data(ForecastConfig(data="etth1", ett_dir=str(tmp_path)), "train")


def test_missing_target_names_it_and_the_columns_present(series_csv):
    with pytest.raises(ConfigError, match=r"forecast\.target='Demand'.*load, OT, temp"):
        forecast_data(ForecastConfig(data=str(series_csv[0]), target="Demand"), "train")
    with pytest.raises(ConfigError, match=r"forecast\.target='OT'.*Demand, Temperature"):
        _ = ForecastConfig(target="OT", features="M").n_variates


@pytest.mark.parametrize("make", [lambda: ForecastConfig(features="X"),
                                  lambda: from_dict(ForecastConfig, {"features": "X"}, "forecast")])
def test_unknown_features_lists_the_valid_ones(make):
    with pytest.raises(ConfigError, match=r"forecast\.features.*'X'.* not allowed; choose one of '?S.*'?M.*'?MS"):
        forecast_data(make(), "train")


def test_unknown_data_name_lists_the_datasets():
    with pytest.raises(ConfigError, match=r"forecast\.data='ettx'.*vic_elec, etth1, etth2"):
        forecast_data(ForecastConfig(data="ettx"), "train")


@pytest.mark.parametrize("field,value", [("lookback", 0), ("horizon", 0), ("stride", 0), ("train_windows", -1),
                                         ("eval_windows", -1)])
def test_numbers_out_of_range(field, value):
    with pytest.raises(ConfigError, match=rf"forecast\.{field}={value}.*out of range"):
        forecast_data(ForecastConfig(**{field: value}), "train")


def test_bad_cells_name_the_column_and_line(tmp_path):
    path = tmp_path / "x.csv"
    write_csv(path, make_values(50))
    lines = path.read_text().splitlines()
    lines[5] = lines[5].rsplit(",", 1)[0] + ",NA"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match=r"column 'temp' has 'NA' at line 6"):
        load_table(ForecastConfig(data=str(path)))
    lines[5], lines[9] = lines[4], "yesterday" + lines[9][lines[9].index(","):]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match=r"column 'date' must hold timestamps.*line 10 has 'yesterday'"):
        load_table(ForecastConfig(data=str(path)))


def test_ett_rule_on_short_data_and_unknown_split(series_csv):
    with pytest.raises(ConfigError, match=r"1000 rows; forecast\.split_rule=ett_hour needs 14400"):
        forecast_data(ForecastConfig(data=str(series_csv[0]), split_rule="ett_hour"), "train")
    with pytest.raises(ConfigError, match=r"split must be one of train, valid, test; got 'val'"):
        forecast_data(ForecastConfig(data=str(series_csv[0])), "val")


# ---- install_ett ----------------------------------------------------------------------------------------------

def fake_ett(folder: Path, names=("ETTh1.csv", "ETTh2.csv"), header=ETT_HEADER) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_text(f"{header}\n2016-07-01 00:00:00,1,2,3,4,5,6,7\n")


@pytest.mark.parametrize("link", [False, True])
def test_install_ett_copies_or_links_from_a_clone_of_etdataset(tmp_path, link):
    fake_ett(tmp_path / "ETDataset" / "ETT-small")
    dest = tmp_path / "data" / "ett"
    installed = install_ett(tmp_path / "ETDataset", dest, link=link, log=lambda _: None)
    assert installed == [dest / "ETTh1.csv", dest / "ETTh2.csv"]
    assert all(p.is_symlink() == link and p.read_text().startswith(ETT_HEADER) for p in installed)
    assert sorted(p.name for p in dest.iterdir()) == ["ETTh1.csv", "ETTh2.csv"]     # nothing else left behind


def test_install_ett_checks_headers_before_writing(tmp_path):
    fake_ett(tmp_path / "src", ("ETTh1.csv",))
    fake_ett(tmp_path / "src", ("ETTh2.csv",), header="time,a,b")
    with pytest.raises(ConfigError, match=r"ETTh2\.csv is not an ETT file"):
        install_ett(tmp_path / "src", tmp_path / "dest", log=lambda _: None)
    assert not (tmp_path / "dest").exists()
    with pytest.raises(ConfigError, match=rf"no ETTh1\.csv or ETTh2\.csv in .*{ETT_URL}"):
        install_ett(tmp_path / "empty", tmp_path / "dest", log=lambda _: None)
