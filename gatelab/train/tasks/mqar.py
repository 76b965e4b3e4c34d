"""MQAR: shuffled epochs over a fixed training set; accuracy by slice on a held-out set (Zoology's metric)."""
from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import torch

from ...tasks.base import TaskData
from ...tasks.mqar import mqar
from .accuracy import final_accuracy, sequence_accuracy
from .base import Task, epochs

if TYPE_CHECKING:
    from ..config import TrainConfig


class MQARTask(Task):
    """Multi-query associative recall (Arora et al. 2023): the final test accuracy, overall and per slice."""

    key, field = "mqar", "mqar"
    description = "multi-query associative recall (Zoology's synthetic)"
    paper = "Arora et al. 2023, arXiv 2312.04927"
    metric, higher_is_better = "accuracy", True

    def __init__(self, cfg: TrainConfig):
        self.train = TaskData.concat([mqar(s, cfg.seed, "train") for s in cfg.mqar.slices("train")])
        self.test = TaskData.concat([mqar(s, cfg.seed, "test") for s in cfg.mqar.slices("test")])
        self.vocab_size, self.max_len = cfg.mqar.vocab_size, self.train.inputs.shape[1]

    @classmethod
    def shape(cls, cfg: TrainConfig) -> tuple[int | None, int]:
        return cfg.mqar.vocab_size, max(cfg.mqar.seq_lens)

    @classmethod
    def set_length(cls, cfg: TrainConfig, T: int) -> None:
        cfg.mqar.seq_lens = [T]

    @classmethod
    def length(cls, cfg: TrainConfig) -> int:
        return max(cfg.mqar.seq_lens)

    @classmethod
    def scores(cls, result: dict[str, Any]) -> dict[str, float]:
        return final_accuracy(result)

    def batches(self, generator: torch.Generator, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return epochs(self.train.inputs, self.train.labels, generator, batch_size)

    def evaluate(self, model: torch.nn.Module, batch_size: int, device: str) -> dict[str, float]:
        return sequence_accuracy(model, self.test, batch_size, device)
