"""Training and search metrics to TensorBoard and MLflow as well, when the spec asks
(`train.log_to: [tensorboard, mlflow]`); the run folder's own files stay the record.

TensorBoard event files go to RUN/tensorboard/ (`tensorboard --logdir RUN`); MLflow uses a local file
store in RUN/mlruns/ unless MLFLOW_TRACKING_URI points elsewhere (`mlflow ui --backend-store-uri
RUN/mlruns`). Scalars are named `<split>/<metric>` (train/loss, val/acc, ...) against the step.

A resumed run continues the same records: TensorBoard drops the events after the checkpoint's step
(`purge_step`), and MLflow reopens the run it started (its id is kept in RUN/mlflow_run.json); MLflow
cannot delete metric values, so the steps redone after a kill appear twice there, with equal values.
"""
from __future__ import annotations

import atexit
import json
import math
import os
from pathlib import Path
from typing import Sequence

from nasgraph.errors import NasgraphError

SINKS = ("tensorboard", "mlflow")
_PACKAGES = {"tensorboard": "tensorboard", "mlflow": "mlflow-skinny (or mlflow)"}


def _scalars(record: dict) -> dict[str, float]:
    split = record.get("split", "train")
    return {f"{split}/{k}": float(v) for k, v in record.items()
            if k not in ("step", "split") and isinstance(v, (int, float)) and not isinstance(v, bool)
            and math.isfinite(v)}


class Tracker:
    """Sends metric records to the chosen sinks; a no-op without any. Closed once, also at exit."""

    def __init__(self, sinks: Sequence[str], run_dir: str | Path, name: str, resume_step: int | None = None):
        """resume_step: the checkpoint's step when the run resumes (records after it are redone)."""
        self.writers, self.mlflow, self.closed = [], None, False
        run_dir = Path(run_dir)
        for sink in sinks:
            try:
                if sink == "tensorboard":
                    from torch.utils.tensorboard import SummaryWriter

                    purge = resume_step + 1 if resume_step is not None else None    # drop the redone steps
                    self.writers.append(SummaryWriter(log_dir=str(run_dir / "tensorboard"), purge_step=purge))
                elif sink == "mlflow":
                    import mlflow

                    if "MLFLOW_TRACKING_URI" not in os.environ:  # the local file store (MLflow 3 asks for opt-in)
                        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
                        mlflow.set_tracking_uri((run_dir / "mlruns").resolve().as_uri())
                    mlflow.set_experiment("nasgraph")
                    self.mlflow = mlflow
                    self._start_mlflow(run_dir, name, resume_step is not None)
                else:
                    raise NasgraphError(f"train.log_to: unknown sink '{sink}'; valid: {', '.join(SINKS)}")
            except ImportError:
                raise NasgraphError(f"train.log_to: {sink} is not installed: pip install {_PACKAGES[sink]} "
                                    f"(or drop it from train.log_to)") from None
        if sinks:
            atexit.register(self.close)

    def _start_mlflow(self, run_dir: Path, name: str, resume: bool) -> None:
        """A new MLflow run, or on resume the one this run folder started (when the store still has it)."""
        id_file = run_dir / "mlflow_run.json"
        run_id = json.loads(id_file.read_text()).get("run_id") if resume and id_file.exists() else None
        try:
            active = self.mlflow.start_run(run_id=run_id) if run_id else None
        except Exception:    # noqa: BLE001 - the store lost it (another MLFLOW_TRACKING_URI): start a new one
            active = None
        if active is None:
            active = self.mlflow.start_run(run_name=name)
            self.mlflow.set_tags({"nasgraph.run": str(run_dir.resolve())})
            id_file.write_text(json.dumps({"run_id": active.info.run_id}) + "\n")

    def log(self, record: dict) -> None:
        step, values = int(record.get("step", 0)), _scalars(record)
        for writer in self.writers:
            for key, value in values.items():
                writer.add_scalar(key, value, step)
        if self.mlflow is not None and values:
            self.mlflow.log_metrics(values, step=step)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for writer in self.writers:
            writer.close()
        if self.mlflow is not None:
            self.mlflow.end_run()
