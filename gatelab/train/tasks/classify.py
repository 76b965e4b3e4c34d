"""Sequence classification (the Long Range Arena tasks): shuffled epochs over the training split; accuracy on the
valid and test splits, the test accuracy reported at the evaluation with the best valid accuracy."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, ClassVar

import torch

from ...models.classifier import SequenceClassifier
from ...tasks.classification import ClassificationData
from ...tasks.lra import listops, lra_image, lra_text, pathfinder
from .base import DATA_SEED, Task, epochs

if TYPE_CHECKING:
    from ..config import TrainConfig

LRA = "Tay et al. 2021 (Long Range Arena), arXiv 2011.04006"
TABLE = "LRA Table 1 (Tay et al. 2021: 4-6 layers of width 256-512, hours of training on accelerators):"


class ClassificationTask(Task):
    """One dataset of ``builder`` (the same for every run; a run's seed varies the model and the batches)."""

    builder: ClassVar[Callable[..., ClassificationData]]
    metric, higher_is_better = "valid/accuracy", True
    score_keys = {"test_accuracy": "test/accuracy", "valid_accuracy": "valid/accuracy"}
    paper = LRA

    def __init__(self, cfg: TrainConfig):
        data = getattr(cfg, self.field)
        build = type(self).builder
        self.splits = {s: build(data, DATA_SEED, s) for s in ("train", "valid", "test")}
        self.num_classes, self.vocab_size = data.num_classes, data.vocab_size
        self.max_len = max(d.inputs.shape[-1] for d in self.splits.values())

    length_field: ClassVar[str] = "max_len"    # the data config's field a grid's length sets

    @classmethod
    def shape(cls, cfg: TrainConfig) -> tuple[int | None, int]:
        data = getattr(cfg, cls.field)
        return data.vocab_size, cls.length(cfg) + 1          # (+1: a CLS token)

    @classmethod
    def set_length(cls, cfg: TrainConfig, T: int) -> None:
        setattr(getattr(cfg, cls.field), cls.length_field, T)

    @classmethod
    def length(cls, cfg: TrainConfig) -> int:
        return getattr(getattr(cfg, cls.field), cls.length_field)

    @classmethod
    def model(cls, cfg: TrainConfig) -> SequenceClassifier:
        return SequenceClassifier(cfg.model, cfg.classifier, getattr(cfg, cls.field).num_classes)

    def batches(self, generator: torch.Generator, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        train = self.splits["train"]
        return epochs(train.inputs, train.labels, generator, batch_size)

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, batch_size: int, device: str) -> dict[str, float]:
        """Accuracy and mean cross-entropy on the valid and test splits."""
        out = {}
        for split in ("valid", "test"):
            data, hits, loss = self.splits[split], 0, 0.0
            for i in range(0, len(data), batch_size):
                x, y = data.inputs[i:i + batch_size].to(device), data.labels[i:i + batch_size].to(device)
                result = model(x, labels=y)
                hits += (result.logits.argmax(-1) == y).sum().item()
                loss += result.loss.item() * len(y)
            out[f"{split}/accuracy"], out[f"{split}/loss"] = hits / len(data), loss / len(data)
        return out


class ListOpsTask(ClassificationTask):
    key, field = "lra-listops", "listops"
    description = "LRA ListOps: the value (0-9) of a nested MAX/MIN/MED/SM expression"
    builder = listops
    reference = (f"{TABLE} Transformer 36.37, Linear Transformer 16.13, Performer 18.01, Sparse Transformer 17.07 "
                 "(at lengths 500-2000); S4 59.60 (S4 paper, Table 4)")


class TextTask(ClassificationTask):
    key, field = "lra-text", "lra_text"
    description = "LRA Text: byte-level IMDB sentiment (the packaged part of IMDB)"
    builder = lra_text
    reference = f"{TABLE} Transformer 64.27, Linear Transformer 65.90, Performer 65.40 (4,096 bytes); S4 86.82"


class PathfinderTask(ClassificationTask):
    key, field = "lra-pathfinder", "pathfinder"
    description = "LRA Pathfinder: are the two dots connected by a dashed contour (pixels, flattened)"
    builder = pathfinder
    reference = f"{TABLE} Transformer 71.40, Linear Transformer 75.30, Performer 77.05; S4 94.20"

    @classmethod
    def set_length(cls, cfg: TrainConfig, T: int) -> None:
        side = round(T ** 0.5)
        if side * side != T:
            raise ValueError(f"lra-pathfinder's length is a square grid's pixel count; {T} is not a square")
        cfg.pathfinder.grid = side

    @classmethod
    def length(cls, cfg: TrainConfig) -> int:
        return cfg.pathfinder.grid ** 2


class ImageTask(ClassificationTask):
    key, field = "lra-image", "lra_image"
    description = "sequential Fashion-MNIST pixels (784), a labelled substitute for LRA's CIFAR-10 Image task"
    builder = lra_image
    reference = (f"{TABLE} on CIFAR-10, not Fashion-MNIST: Transformer 42.44, Linear Transformer 42.34, "
                 "Performer 42.77; S4 88.65")
    PIXELS = 784

    @classmethod
    def set_length(cls, cfg: TrainConfig, T: int) -> None:
        if T != cls.PIXELS:
            raise ValueError(f"lra-image sequences are Fashion-MNIST's {cls.PIXELS} pixels; the length cannot be {T}")

    @classmethod
    def length(cls, cfg: TrainConfig) -> int:
        return cls.PIXELS
