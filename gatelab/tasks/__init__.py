"""Tasks: configs and pure, seeded build functions."""
from .base import TaskData
from .mqar import MQARConfig, assemble, mqar

__all__ = ["MQARConfig", "TaskData", "assemble", "mqar"]
