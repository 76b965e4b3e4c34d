"""Tasks: configs and pure, seeded build functions. MQAR; text corpora (``text``); the Long Range Arena (``lra``);
Mamba's synthetic tasks (``synthetic``); time-series forecasting (``series``)."""
from .base import TaskData
from .classification import PAD, ClassificationData
from .lra import (
    ListOpsConfig,
    LRAImageConfig,
    LRATextConfig,
    PathfinderConfig,
    listops,
    lra_image,
    lra_text,
    pathfinder,
    pathfinder_images,
)
from .mqar import MQARConfig, assemble, mqar
from .series import ForecastConfig, ForecastWindows, forecast_data, install_ett
from .synthetic import InductionHeadsConfig, SelectiveCopyingConfig, induction_heads, selective_copying

__all__ = ["PAD", "ClassificationData", "ForecastConfig", "ForecastWindows", "InductionHeadsConfig", "LRAImageConfig",
           "LRATextConfig", "ListOpsConfig", "MQARConfig", "PathfinderConfig", "SelectiveCopyingConfig", "TaskData",
           "assemble", "forecast_data", "induction_heads", "install_ett", "listops", "lra_image", "lra_text", "mqar",
           "pathfinder", "pathfinder_images", "selective_copying"]
