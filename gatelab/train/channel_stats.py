"""What a run logs of its channel mixers: auxiliary losses and routing statistics, as metrics-record entries."""
from __future__ import annotations

import math
from typing import Any

import torch


def aux_record(aux: dict[str, torch.Tensor], parts: int) -> dict[str, float]:
    """``aux/<name>``: each auxiliary loss (with its coefficient) of one micro-batch, over ``parts`` micro-batches."""
    return {f"aux/{name}": value.item() / parts for name, value in aux.items()}


def mean_stats(by_layer: dict[str, dict[str, Any]], prefix: str = "") -> dict[str, float]:
    """``<prefix>/<stat>`` (``<stat>`` without a prefix): the mean over layers of each statistic that is a finite
    number (lists such as the expert load are kept per layer in the run's result, not in the metrics log)."""
    values: dict[str, list[float]] = {}
    for stats in by_layer.values():
        for key, value in stats.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                values.setdefault(key, []).append(float(value))
    return {f"{prefix}/{key}" if prefix else key: sum(v) / len(v) for key, v in values.items()}
