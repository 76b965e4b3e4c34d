"""Reproductions on the non-LM tasks (classification, synthetic next-token, forecasting): variants of one base
config trained over seeds, their records, and per-seed values of a metric for the verdicts."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from ..train.config import TrainConfig
from ..train.executors import Executor
from ..train.sweep import SweepRun, run_sweep
from .experiment import Variant


def variant_config(base: TrainConfig, v: Variant, seed: int) -> TrainConfig:
    """``base`` with variant ``v``'s mixer (its options on top of the base's for that key) and model fields."""
    cfg = copy.deepcopy(base)
    cfg.model.mixer, cfg.seed = v.mixer, seed
    if v.options:
        cfg.model.mixer_options[v.mixer] = {**cfg.model.mixer_options.get(v.mixer, {}), **v.options}
    for name, value in v.model.items():
        setattr(cfg.model, name, copy.deepcopy(value))
    return cfg


def task_runs(base: TrainConfig, variants: list[Variant], seeds: int, prefix: str = "") -> list[SweepRun]:
    """Every (variant, seed) run of ``base``; ``prefix`` names a group (a horizon, a task) in folders and coords."""
    return [SweepRun(f"{prefix}{v.name}-s{seed}", {"variant": f"{prefix}{v.name}", "seed": seed},
                     variant_config(base, v, seed))
            for v in variants for seed in range(seeds)]


def task_records(runs: list[SweepRun], out: Path, progress: bool, executor: Executor | None) -> list[dict[str, Any]]:
    """Train (or read back) ``runs`` under ``out/runs``; one record per run: variant, seed, its task's scores,
    parameters, state size and training throughput."""
    return [{**r, "params": r["num_params"]} for r in run_sweep(runs, out, progress, executor)]
