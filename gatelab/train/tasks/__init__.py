"""The tasks a run trains on, by ``TrainConfig.task``: what each asks of the loop and reports to a sweep."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ...config import ConfigError
from .base import Task
from .classify import ClassificationTask, ImageTask, ListOpsTask, PathfinderTask, TextTask
from .forecast import ForecastTask
from .lm import LMTask, perplexity
from .mqar import MQARTask
from .next_token import InductionHeadsTask, SelectiveCopyingTask

if TYPE_CHECKING:
    from ..config import TrainConfig

TASKS: dict[str, type[Task]] = {t.key: t for t in (
    MQARTask, LMTask, ListOpsTask, TextTask, PathfinderTask, ImageTask, SelectiveCopyingTask, InductionHeadsTask,
    ForecastTask)}


def task_class(key: str) -> type[Task]:
    """The task of ``key``; an unknown key is an error that lists the valid ones."""
    if key not in TASKS:
        raise ConfigError(f"unknown task {key!r}; choose one of: {', '.join(TASKS)}")
    return TASKS[key]


def build_task(cfg: TrainConfig) -> Task:
    return task_class(cfg.task)(cfg)


__all__ = ["TASKS", "ClassificationTask", "ForecastTask", "LMTask", "MQARTask", "Task", "build_task", "perplexity",
           "task_class"]
