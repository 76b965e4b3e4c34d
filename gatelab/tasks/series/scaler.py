"""Per-variate standardisation, fitted on the training rows only (as Informer's ``StandardScaler`` in
``utils/tools.py``: the mean and the population standard deviation of each column)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch

Array = TypeVar("Array", np.ndarray, torch.Tensor)


@dataclass(frozen=True)
class Scaler:
    """``z = (x - mean) / std`` per column. ``mean``, ``std``: ``[C]`` float64 in the order of ``columns``."""

    columns: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, values: np.ndarray, columns: tuple[str, ...]) -> Scaler:
        """Fit on ``values`` ``[T, C]`` (the training rows). A constant column gets std 1, as scikit-learn's
        StandardScaler does, so that it becomes 0 rather than NaN."""
        std = values.std(axis=0)                                                   # (C,) population std
        return cls(tuple(columns), values.mean(axis=0), np.where(std > 0, std, 1.0))

    def _stats(self, values: Array, columns: tuple[str, ...] | list[str] | None) -> tuple[Array, Array]:
        columns = tuple(columns) if columns is not None else self.columns
        unknown = [c for c in columns if c not in self.columns]
        if unknown or values.shape[-1] != len(columns):
            raise ValueError(f"the scaler knows columns {', '.join(self.columns)}; got values with "
                              f"{values.shape[-1]} columns named {', '.join(columns)}")
        idx = [self.columns.index(c) for c in columns]
        mean, std = self.mean[idx], self.std[idx]
        if isinstance(values, torch.Tensor):
            return (torch.as_tensor(mean, dtype=values.dtype, device=values.device),
                    torch.as_tensor(std, dtype=values.dtype, device=values.device))
        return mean, std

    def transform(self, values: Array, columns: tuple[str, ...] | list[str] | None = None) -> Array:
        """Standardise ``values`` ``[..., len(columns)]`` (columns: default all, in order)."""
        mean, std = self._stats(values, columns)
        return (values - mean) / std

    def inverse_transform(self, values: Array, columns: tuple[str, ...] | list[str] | None = None) -> Array:
        """Back to the data's units: ``values * std + mean`` for ``values`` ``[..., len(columns)]``, e.g. a
        model's forecast ``y`` with ``columns=windows.y_columns``."""
        mean, std = self._stats(values, columns)
        return values * std + mean

    def as_dict(self) -> dict[str, dict[str, float]]:
        """``{column: {"mean": ..., "std": ...}}`` for a report."""
        return {c: {"mean": float(m), "std": float(s)} for c, m, s in zip(self.columns, self.mean, self.std,
                                                                          strict=True)}
