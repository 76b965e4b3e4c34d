"""What the training loop asks of a task: a model, batches, an evaluation, and the metric that picks the best
evaluation; what a sweep asks of it: the scores it reports and the length a grid varies."""
from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from ...models.lm import DecoderLM

if TYPE_CHECKING:
    from ..config import TrainConfig

DATA_SEED = 0   # generated tasks other than MQAR build one dataset for every run; a run's seed varies the model


class Task:
    """A task of ``TrainConfig.task``. Subclasses set the class attributes and implement ``batches`` and
    ``evaluate``; ``evaluate`` returns the metrics named by ``metric`` and ``scores``.

    key: the ``task`` value; field: the TrainConfig field holding its data config (None: no own config);
    metric: the evaluation metric that picks a run's best evaluation (``higher_is_better`` says which way);
    reference: the papers' published numbers on the task, which reports print beside ours (labelled as another
    scale);
    score_keys: what a sweep reports from that best evaluation (a diverged run scores ``worst``)."""

    key: ClassVar[str]
    field: ClassVar[str | None] = None
    description: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    metric: ClassVar[str]
    higher_is_better: ClassVar[bool]
    score_keys: ClassVar[dict[str, str]] = {}   # reported name -> evaluation key
    reference: ClassVar[str] = ""               # the papers' numbers on this task, for reports (other scales)

    vocab_size: int
    max_len: int

    @classmethod
    def shape(cls, cfg: TrainConfig) -> tuple[int | None, int]:
        """The model's vocabulary (None: decided at run time, a corpus's tokenizer) and the longest sequence."""
        raise NotImplementedError

    @classmethod
    def set_length(cls, cfg: TrainConfig, T: int) -> None:
        """Set the training length a compare grid varies (``--lengths``)."""
        raise NotImplementedError

    @classmethod
    def length(cls, cfg: TrainConfig) -> int:
        """The training length of ``cfg`` (what ``set_length`` sets)."""
        raise NotImplementedError

    @classmethod
    def scores(cls, result: dict[str, Any]) -> dict[str, float]:
        """The reported metrics of one finished run (its best evaluation), or the worst for a diverged one."""
        worst = 0.0 if cls.higher_is_better else float("inf")
        if result.get("diverged"):
            return dict.fromkeys(cls.score_keys, worst)
        return {name: result["best"][key] for name, key in cls.score_keys.items()}

    @classmethod
    def model(cls, cfg: TrainConfig) -> nn.Module:
        """The model this task trains, from the config alone (so it can be built on the meta device to check a
        config before any data is made)."""
        return DecoderLM(cfg.model)

    def batches(self, generator: torch.Generator, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        raise NotImplementedError

    def evaluate(self, model: nn.Module, batch_size: int, device: str) -> dict[str, float]:
        raise NotImplementedError


def epoch_indices(n: int, generator: torch.Generator, batch_size: int) -> Iterator[torch.Tensor]:
    """The example indices of each batch of shuffled epochs over ``n`` examples (fewer than a batch: one short
    batch per epoch)."""
    while True:
        order = torch.randperm(n, generator=generator)
        for i in range(0, max(1, len(order) - batch_size + 1), batch_size):
            yield order[i:i + batch_size]


def epochs(inputs: torch.Tensor, labels: torch.Tensor, generator: torch.Generator, batch_size: int
           ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Shuffled epochs over a fixed training set, batch by batch."""
    for idx in epoch_indices(len(inputs), generator, batch_size):
        yield inputs[idx], labels[idx]
