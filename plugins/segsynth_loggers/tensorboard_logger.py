"""TensorBoard event files in ``RUN/tensorboard/<task>/`` (``tensorboard --logdir RUN/tensorboard``).

Event files are streams TensorBoard's writer appends to as training goes; like ``run.log`` they
are not written whole through ``segsynth.files``, and a lost last record costs nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

import segsynth

EXTRA = "pip install 'segsynth[tensorboard]'"


class TensorBoardLogger(segsynth.Logger):
    name = "tensorboard"
    requires = "tensorboard"
    extra = "tensorboard"
    description = f"TensorBoard event files in RUN/tensorboard/<task> ({EXTRA})."

    class Params(segsynth.Params):
        """No parameters: one event folder per training task under RUN/tensorboard/."""


    def __init__(self, params: segsynth.Params, run_dir: Path) -> None:
        super().__init__(params, run_dir)  # refuses (exit 2, naming the extra) without the package
        self.writers: dict[str, Any] = {}

    def _writer(self, task: str) -> Any:
        writer = self.writers.get(task)
        if writer is None:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(log_dir=str(self.folder / task))  # core's RUN/tensorboard/
            self.writers[task] = writer
        return writer

    def log_scalars(self, task: str, step: int, values: dict[str, float]) -> None:
        writer = self._writer(task)
        for key, value in values.items():
            writer.add_scalar(key, value, step)

    def log_image(self, task: str, step: int, tag: str, image: torch.Tensor) -> None:
        self._writer(task).add_image(tag, image, step, dataformats="CHW")

    def close(self) -> None:
        for writer in self.writers.values():
            writer.flush()
            writer.close()
        self.writers.clear()
