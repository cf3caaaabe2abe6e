"""train.log_to: metrics go to TensorBoard and MLflow (local file store in the run folder) as well as to
the run folder's metrics.jsonl; each sink's test skips when its package is missing."""
from __future__ import annotations

import json
import sys

import pytest

from nasgraph.cli import main
from nasgraph.errors import SpecError
from nasgraph.spec import load_spec


def val_rows(run) -> dict[int, float]:
    rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["acc"] for r in rows if r["split"] == "val"}


def test_tensorboard_gets_the_same_metrics(tiny_spec, tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    spec = tiny_spec(extra="")
    assert main(["search", str(spec), "--out", str(run), "--no-progress", "--set", "train.log_to=[tensorboard]"]) == 0
    events = EventAccumulator(str(run / "seed0" / "tensorboard"))
    events.Reload()
    logged = {e.step: e.value for e in events.Scalars("val/acc")}
    assert logged == pytest.approx(val_rows(run / "seed0")) and "train/loss" in events.Tags()["scalars"]


def test_mlflow_gets_the_same_metrics_in_a_local_store(tiny_spec, tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow", reason="mlflow not installed")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run = tmp_path / "run"
    assert main(["search", str(tiny_spec()), "--out", str(tmp_path / "s"), "--no-progress"]) == 0
    assert main(["derive", str(tmp_path / "s"), "-o", str(tmp_path / "d.yaml")]) == 0
    assert main(["train", str(tmp_path / "d.yaml"), "--out", str(run), "--no-progress",
                 "--set", "train.log_to=[mlflow]"]) == 0
    client = mlflow.MlflowClient((run / "mlruns").resolve().as_uri())
    (found,) = client.search_runs([client.get_experiment_by_name("nasgraph").experiment_id])
    history = {m.step: m.value for m in client.get_metric_history(found.info.run_id, "val/acc")}
    assert history == pytest.approx(val_rows(run)) and found.info.status == "FINISHED"
    test_acc = json.loads((run / "result.json").read_text())["test"]["acc"]
    assert found.data.metrics["test/acc"] == pytest.approx(test_acc)


def test_unknown_sink_and_missing_package(tiny_spec, tmp_path, monkeypatch, capsys):
    with pytest.raises(SpecError, match="train.log_to"):
        load_spec(tiny_spec(), ["train.log_to=[wandb]"])
    monkeypatch.setitem(sys.modules, "mlflow", None)   # import mlflow -> ImportError
    assert main(["search", str(tiny_spec()), "--out", str(tmp_path / "run"), "--no-progress",
                 "--set", "train.log_to=[mlflow]"]) == 2
    assert "mlflow is not installed: pip install" in capsys.readouterr().err


def test_resume_continues_the_same_records(tiny_spec, tmp_path, monkeypatch):
    """A run resumed from an older checkpoint (as after a kill): TensorBoard holds each step once, and
    MLflow keeps one run, the one the first process started."""
    pytest.importorskip("tensorboard", reason="tensorboard not installed")
    mlflow = pytest.importorskip("mlflow", reason="mlflow not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run = tmp_path / "run"
    assert main(["search", str(tiny_spec()), "--out", str(tmp_path / "s"), "--no-progress"]) == 0
    assert main(["derive", str(tmp_path / "s"), "-o", str(tmp_path / "d.yaml")]) == 0
    train = ["train", str(tmp_path / "d.yaml"), "--out", str(run), "--no-progress",
             "--set", "train.log_to=[tensorboard, mlflow]"]
    assert main(train) == 0
    ckpts = run / "checkpoints"
    (ckpts / "last.pt").write_bytes((ckpts / "prev.pt").read_bytes())   # back to step 3: steps 4-6 are redone
    assert main(train + ["--resume"]) == 0
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    steps = [e.step for e in events.Scalars("train/loss")]
    assert steps == sorted(set(steps)) and max(steps) == 6
    client = mlflow.MlflowClient((run / "mlruns").resolve().as_uri())
    (found,) = client.search_runs([client.get_experiment_by_name("nasgraph").experiment_id])
    assert json.loads((run / "mlflow_run.json").read_text())["run_id"] == found.info.run_id
    assert {m.step for m in client.get_metric_history(found.info.run_id, "val/acc")} == set(val_rows(run))
