"""An MLflow run per `synth run` (and per resume), metrics named ``<task>/<value>``.

Where the runs go is MLflow's own choice unless ``tracking_uri`` says: ``MLFLOW_TRACKING_URI``
or a ``mlflow.set_tracking_uri`` call (a server, a database, a folder).
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import torch
from pydantic import Field

import segsynth

EXTRA = "pip install 'segsynth[mlflow]'"


class MLflowLogger(segsynth.Logger):
    name = "mlflow"
    requires = "mlflow"
    extra = "mlflow"
    description = f"Metrics and pictures to an MLflow tracking server or store ({EXTRA})."

    class Params(segsynth.Params):
        tracking_uri: str | None = Field(
            None, description="MLflow tracking URI; default: MLflow's own (MLFLOW_TRACKING_URI, "
            "mlflow.set_tracking_uri or ./mlruns).",
        )
        experiment: str | None = Field(None, description="Experiment name; default: the run folder's name.")
        run_name: str | None = Field(None, description="Run name; default: the run folder's name.")


    def __init__(self, params: segsynth.Params, run_dir: Path) -> None:
        super().__init__(params, run_dir)  # refuses (exit 2, naming the extra) without the package
        from mlflow.tracking import MlflowClient

        p: Any = params
        folder = Path(run_dir).resolve().name
        self.client = MlflowClient(tracking_uri=p.tracking_uri)
        name = p.experiment or folder
        found = self.client.get_experiment_by_name(name)
        experiment = found.experiment_id if found is not None else self.client.create_experiment(name)
        self.run_id = self.client.create_run(experiment, run_name=p.run_name or folder).info.run_id

    def log_scalars(self, task: str, step: int, values: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(f"{task}/{k}", v, now, step)
                                                    for k, v in values.items()])

    def log_image(self, task: str, step: int, tag: str, image: torch.Tensor) -> None:
        from PIL import Image

        array = (image.permute(1, 2, 0).squeeze(-1) * 255).round().to(torch.uint8).numpy()
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="PNG")
        self.client.log_image(self.run_id, Image.open(buffer),
                              artifact_file=f"{task}/{tag}/step_{step:08d}.png")

    def close(self) -> None:
        self.client.set_terminated(self.run_id)
