"""Training: configs, the loop, optimiser groups and schedules, run folders."""
from .config import LMTaskConfig, MQARTaskConfig, TrainConfig
from .loop import evaluate, train
from .optim import OptimConfig, build_optimizer, lr_at
from .run import RunDir, environment

__all__ = ["LMTaskConfig", "MQARTaskConfig", "OptimConfig", "RunDir", "TrainConfig", "build_optimizer",
           "environment", "evaluate", "lr_at", "train"]
