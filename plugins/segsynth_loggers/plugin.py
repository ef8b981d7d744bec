"""Registers the TensorBoard and MLflow loggers with segsynth."""

from __future__ import annotations

import segsynth
from segsynth_loggers.mlflow_logger import MLflowLogger
from segsynth_loggers.tensorboard_logger import TensorBoardLogger

SEGSYNTH_API = 1


@segsynth.hookimpl
def segsynth_register_components() -> list[type[segsynth.Component]]:
    """The TensorBoard and MLflow loggers."""
    return [TensorBoardLogger, MLflowLogger]
