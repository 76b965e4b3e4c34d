"""``gatelab reproduce informer-ett``: Informer's ProbSparse self-attention against full attention on ETTh1 (Zhou
et al. 2021, arXiv 2012.07436, Table 2 multivariate; the README's tables after the 2021 scaling fix), per
horizon: ProbSparse keeps full attention's accuracy (MSE/MAE) at a lower cost, measured here as the time of a
forward and backward pass and the activations kept for the backward pass at lookbacks of 720 and more."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from ..registry import MIXERS
from ..task_grids import task_base
from ..train.config import TrainConfig
from ..train.executors import Executor
from ..train.tasks import ForecastTask
from .experiment import Variant
from .report import mode_note, write_report
from .task_runs import task_records, task_runs
from .verdict import Claim, Precondition

VARIANTS = [Variant("attn", "attn"), Variant("probsparse", "probsparse")]
# Informer's ETTh1 multivariate lookback for each horizon (its scripts/ETTh1.sh)
LOOKBACK = {24: 48, 48: 96, 168: 168, 336: 168, 720: 336}
# Informer's README Table 2 (multivariate ETTh1, after the scaling fix), MSE / MAE: ProbSparse and full attention
PAPER = {24: ("0.577 / 0.549", "0.620 / 0.577"), 48: ("0.685 / 0.625", "0.692 / 0.671"),
         168: ("0.931 / 0.752", "0.947 / 0.797"), 336: ("1.128 / 0.873", "1.094 / 0.813"),
         720: ("1.215 / 0.896", "1.241 / 0.917")}
# (steps, batch, eval_every, d_model, horizons, cost lengths) per mode
SCALES = {"smoke": (4, 4, 2, 16, [24], [96]),
          "quick": (300, 32, 100, 64, [24, 48, 168], [720, 1440, 2880]),
          "full": (600, 32, 100, 64, [24, 48, 168, 336, 720], [720, 1440, 2880])}


def base_config(mode: str, horizon: int, data: str = "etth1") -> TrainConfig:
    """Informer's encoder at CPU scale: ETTh1 (or ``data``), all 7 variates in and out (multivariate), its lookback
    for the horizon, 2 bidirectional layers with self-attention distilling between them, each time step one
    token."""
    steps, batch, every, d, _, _ = SCALES[mode]
    cfg = task_base("forecast", steps, batch, every, bidirectional=True)
    cfg.forecast.data, cfg.forecast.features = data, "M"
    cfg.forecast.lookback, cfg.forecast.horizon = LOOKBACK[horizon], horizon
    cfg.forecaster.channel_independent, cfg.forecaster.distil = False, True
    cfg.model.d_model = d
    if mode == "smoke":
        cfg.forecast.train_windows, cfg.forecast.eval_windows = 64, 32
    return cfg


def cost(key: str, length: int, d_model: int, repeats: int) -> tuple[list[float], int]:
    """Seconds of a forward and backward pass of one bidirectional ``key`` layer over ``[4, length, d_model]``
    (each repeat after three warm-up passes) and the bytes of the activations it keeps for the backward pass."""
    torch.manual_seed(0)
    layer = MIXERS.get(key)(d_model, n_heads=4, causal=False)
    x = torch.randn(4, length, d_model, requires_grad=True)
    saved = []

    def keep(t: torch.Tensor) -> torch.Tensor:
        saved.append(t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(keep, lambda t: t):
        y, _ = layer(x)
    y.square().mean().backward()
    for _ in range(2):                                   # warm-up: first calls allocate and build caches
        layer(x)[0].square().mean().backward()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        y, _ = layer(x)
        y.square().mean().backward()
        times.append(time.perf_counter() - t0)
    return times, sum(saved)


def cost_records(lengths: list[int], d_model: int, repeats: int = 5) -> list[dict[str, Any]]:
    """Per variant and length, one record per timed repeat (``seconds``) and the saved activations (MiB); the
    two variants are timed alternately, so drift affects both alike."""
    out = []
    for T in lengths:
        for v in VARIANTS:
            times, saved = cost(v.mixer, T, d_model, repeats)
            out += [{"variant": f"L{T}:{v.name}", "seed": i, "seconds": t, "saved_mib": saved / 2**20}
                    for i, t in enumerate(times)]
    return out


def zero_forecast_mse(cfg: TrainConfig) -> float:
    """The test MSE of forecasting every value as the training mean (0 on standardised data): the floor a
    forecaster must beat to have learned anything."""
    test = ForecastTask(cfg).splits["test"]
    _, y = test[torch.arange(len(test))]
    return y.double().square().mean().item()


def claims(horizons: list[int], lengths: list[int], data: str) -> list[Claim]:
    out = []
    for h in horizons:
        paper = (f"ProbSparse {PAPER[h][0]}, full attention {PAPER[h][1]} (MSE / MAE)" if data == "etth1"
                 else f"Informer's table is for ETTh1, not {data}")
        skill = Precondition(f"full attention forecasts H={h}", "skill", f"H{h}:attn", 0.05,
                             "its test MSE at least 5% below the zero forecast's (the training mean): otherwise "
                             "neither model learned to forecast and their equality says nothing")
        out.append(Claim(f"H={h}: ProbSparse's test MSE is within 5% of full attention's", "test_mse",
                         f"H{h}:attn", f"H{h}:probsparse", "lower", paper, skill, margin=0.05))
    for T in lengths:
        out.append(Claim(f"L={T}: a ProbSparse layer's forward + backward is faster than full attention's",
                         "seconds", f"L{T}:attn", f"L{T}:probsparse", "lower",
                         "O(L log L) time and memory against O(L^2) (paper §3)"))
    return out


def reproduce(mode: str, seeds: int, out: Path, data: str | None, command: str, progress: bool = True,
              executor: Executor | None = None) -> Path:
    steps, batch, _, d, horizons, lengths = SCALES[mode]
    data = data or "etth1"
    records: list[dict[str, Any]] = []
    for h in horizons:
        base = base_config(mode, h, data)
        zero = zero_forecast_mse(base)
        runs = task_runs(base, VARIANTS, seeds, prefix=f"H{h}:")
        records += [{**r, "zero_mse": zero, "skill": 1 - r["test_mse"] / zero}
                    for r in task_records(runs, out / f"H{h}", progress, executor)]
    records += cost_records(lengths, d)
    columns = {"test_mse": "test MSE", "test_mae": "test MAE", "zero_mse": "zero forecast MSE",
               "skill": "1 - MSE / zero's", "params": "params", "seconds": "forward+backward (s)",
               "saved_mib": "activations kept (MiB)"}
    notes = mode_note(mode) + [
        "Informer's models: d_model 512, 8 heads, 2 encoder layers + 1 decoder layer, 6 epochs of batch 32 at lr "
        "1e-4, 5 runs; its decoder reads a start token of 48 steps and outputs the horizon at once. Here: the "
        f"encoder alone (d_model {d}, 2 layers with distilling between them, each time step's values as one "
        "token) and a linear head from the encoder's states to the horizon, so only the comparison of ProbSparse "
        "with full attention carries over, not the numbers.",
        "Cost rows (L<length>): one layer at d_model "
        f"{d}, batch 4, float32 on this CPU with nothing else running, 5 timed repeats after three warm-up passes; "
        "activations kept = the bytes autograd "
        "saves for the backward pass (the memory that grows with L)."]
    variates = base_config(mode, horizons[0], data).forecast.n_variates
    settings = [f"- {data} (Informer's 12/4/4-month split for ETT, standardised on the training rows), multivariate "
                f"({variates} in, {variates} out), lookback per horizon "
                f"{', '.join(f'{h}: {LOOKBACK[h]}' for h in horizons)} (Informer's for ETTh1)",
                f"- {steps} steps of batch {batch}, AdamW lr 1e-3; test MSE/MAE at the evaluation with the lowest "
                f"valid MSE; {seeds} seeds",
                "- ProbSparse: factor c = 5 (u = c ln L active queries, c ln L sampled keys per query), lazy queries "
                "get the mean of V (Informer's encoder)"]
    return write_report(out, f"Reproduction: Informer's ProbSparse attention on {data}", command, records, columns,
                        claims(horizons, lengths, data), notes, settings)
