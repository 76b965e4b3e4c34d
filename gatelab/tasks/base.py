"""What every task builds: inputs, labels (-100 where unscored) and a slice name per example."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class TaskData:
    """A split of a sequence task. inputs, labels: ``[N, T]`` int64; ``slices[i]`` names example i's slice
    (e.g. ``"len64-kv4"``) for per-slice accuracy."""

    inputs: torch.Tensor
    labels: torch.Tensor
    slices: list[str]

    def __len__(self) -> int:
        return self.inputs.shape[0]

    @staticmethod
    def concat(parts: list[TaskData]) -> TaskData:
        """Join splits of one length; different lengths are right-padded (input 0, label -100)."""
        T = max(p.inputs.shape[1] for p in parts)

        def pad(x: torch.Tensor, value: int) -> torch.Tensor:
            return torch.nn.functional.pad(x, (0, T - x.shape[1]), value=value)

        return TaskData(
            torch.cat([pad(p.inputs, 0) for p in parts]),
            torch.cat([pad(p.labels, -100) for p in parts]),
            [s for p in parts for s in p.slices],
        )
