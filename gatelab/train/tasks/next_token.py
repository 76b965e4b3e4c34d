"""The Mamba paper's synthetic next-token tasks (Gu & Dao 2023, arXiv 2312.00752, §4.1): selective copying and
induction heads, trained at one length and tested at that length and at multiples of it (its Table 2)."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from ...tasks.synthetic import induction_heads, selective_copying
from .accuracy import final_accuracy, sequence_accuracy
from .base import DATA_SEED, Task, epochs

if TYPE_CHECKING:
    from ..config import TrainConfig


class NextTokenTask(Task):
    """Shuffled epochs over a fixed training set at ``seq_len``; accuracy on the scored positions of a test set
    at every length of ``extrapolate`` (``accuracy/len<T>``; ``accuracy`` is the training length's). A run reports
    its final evaluation, as MQAR's."""

    builder: ClassVar[Callable]
    metric, higher_is_better = "accuracy", True
    paper = "Gu & Dao 2023 (Mamba), arXiv 2312.00752"

    def __init__(self, cfg: TrainConfig):
        data = getattr(cfg, self.field)
        build = type(self).builder
        self.train = build(data, DATA_SEED, "train")
        self.tests = {m * data.seq_len: build(data, DATA_SEED, "test", seq_len=m * data.seq_len)
                      for m in sorted(set(data.extrapolate) | {1})}
        self.seq_len = data.seq_len
        self.vocab_size, self.max_len = data.vocab_size, data.seq_len     # (state sizes: at the training length)

    @classmethod
    def shape(cls, cfg: TrainConfig) -> tuple[int | None, int]:
        data = getattr(cfg, cls.field)
        return data.vocab_size, data.seq_len * max(data.extrapolate)

    @classmethod
    def set_length(cls, cfg: TrainConfig, T: int) -> None:
        getattr(cfg, cls.field).seq_len = T

    @classmethod
    def length(cls, cfg: TrainConfig) -> int:
        return getattr(cfg, cls.field).seq_len

    @classmethod
    def scores(cls, result: dict[str, Any]) -> dict[str, float]:
        return final_accuracy(result)

    def batches(self, generator: torch.Generator, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return epochs(self.train.inputs, self.train.labels, generator, batch_size)

    def evaluate(self, model: torch.nn.Module, batch_size: int, device: str) -> dict[str, float]:
        out = {}
        for T, data in self.tests.items():
            metrics = sequence_accuracy(model, data, max(1, batch_size * self.seq_len // T), device)
            out[f"accuracy/len{T}"] = metrics["accuracy"]
            if self.seq_len == T:
                out["accuracy"], out["loss"] = metrics["accuracy"], metrics["loss"]
        return out


class SelectiveCopyingTask(NextTokenTask):
    key, field = "selective-copying", "selective_copying"
    description = "selective copying: emit the data tokens scattered among noise, in order (Mamba §4.1)"
    builder = selective_copying
    reference = ("Mamba Table 1 (length 4,096, 16 tokens, 2 layers of width 64, 400k steps): S4 18.3%, H3 57.0%, "
                 "Hyena 30.1%, Mamba 99.8%")


class InductionHeadsTask(NextTokenTask):
    key, field = "induction-heads", "induction_heads"
    description = "induction heads: recall the token after the first trigger; length extrapolation (Mamba Table 2)"
    builder = induction_heads
    reference = ("Mamba Table 2 (trained at 256, 25k steps): Mamba 100% up to 2^20 tokens; attention with most "
                 "position encodings fails beyond 2x the training length")
