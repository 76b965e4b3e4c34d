"""What every classification task builds: token sequences (right-padded with 0) and one label per example."""
from __future__ import annotations

from dataclasses import dataclass

import torch

PAD = 0   # the padding token of every classification task; real tokens are >= 1


@dataclass
class ClassificationData:
    """A split of a classification task. ``inputs``: ``[N, T]`` int64 token ids, right-padded with ``PAD``
    (``[N, 2, T]`` for a pair task: two sequences per example); ``labels``: ``[N]`` int64 classes."""

    inputs: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return self.inputs.shape[0]

    def lengths(self) -> torch.Tensor:
        """The unpadded length of every sequence: ``[N]`` (``[N, 2]`` for pairs)."""
        return (self.inputs != PAD).sum(-1)
