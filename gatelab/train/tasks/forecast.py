"""Forecasting: shuffled epochs of training windows; MSE and MAE on standardised valid and test windows."""
from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch

from ...models.forecaster import Forecaster
from ...models.gateformer import Gateformer, build_forecaster
from ...tasks.series import forecast_data
from .base import Task, epoch_indices

if TYPE_CHECKING:
    from ..config import TrainConfig


class ForecastTask(Task):
    """Multivariate long-sequence forecasting (ETTh1/ETTh2 with Informer's splits, vic_elec, any ETT-format CSV):
    MSE and MAE on standardised data, as Informer reports them, at the evaluation with the lowest valid MSE."""

    key, field = "forecast", "forecast"
    description = "time-series forecasting: MSE / MAE over a horizon (ETTh1, ETTh2, vic_elec, a CSV)"
    paper = "Zhou et al. 2021 (Informer), arXiv 2012.07436"
    metric, higher_is_better = "valid/mse", False
    score_keys = {"test_mse": "test/mse", "test_mae": "test/mae", "valid_mse": "valid/mse"}
    reference = ("Informer's README Table 2, ETTh1 multivariate (d_model 512, 6 epochs), MSE / MAE: H=24 0.577 / "
                 "0.549, 48 0.685 / 0.625, 168 0.931 / 0.752, 336 1.128 / 0.873, 720 1.215 / 0.896 (none for vic_elec)")

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg.forecast
        self.splits = {s: forecast_data(cfg.forecast, s) for s in ("train", "valid", "test")}
        train = self.splits["train"]
        self.vocab_size, self.max_len = cfg.model.vocab_size, train.lookback

    @classmethod
    def shape(cls, cfg: TrainConfig) -> tuple[int | None, int]:
        return cfg.model.vocab_size, cfg.forecast.lookback

    @classmethod
    def set_length(cls, cfg: TrainConfig, T: int) -> None:
        cfg.forecast.horizon = T

    @classmethod
    def length(cls, cfg: TrainConfig) -> int:
        return cfg.forecast.horizon

    @classmethod
    def model(cls, cfg: TrainConfig) -> Forecaster | Gateformer:
        """A forecaster of ``cfg.forecast``'s variates (the target is the last input; ``MS`` and ``S`` predict it,
        ``M`` every variate)."""
        f = cfg.forecast
        n_in, n_out = f.n_variates, f.n_targets
        return build_forecaster(cfg.model, cfg.forecaster, f.lookback, f.horizon, n_in, list(range(n_in - n_out, n_in)))

    def batches(self, generator: torch.Generator, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        train = self.splits["train"]
        for idx in epoch_indices(len(train), generator, batch_size):
            yield train[idx]

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, batch_size: int, device: str) -> dict[str, float]:
        """MSE and MAE over every window and every predicted value of the valid and test splits."""
        out = {}
        for split in ("valid", "test"):
            windows, se, ae, n = self.splits[split], 0.0, 0.0, 0
            for i in range(0, len(windows), batch_size):
                x, y = windows[torch.arange(i, min(i + batch_size, len(windows)))]
                err = model(x.to(device)).logits.float() - y.to(device).float()
                se, ae, n = se + err.square().sum().item(), ae + err.abs().sum().item(), n + err.numel()
            out[f"{split}/mse"], out[f"{split}/mae"] = se / n, ae / n
        return out
