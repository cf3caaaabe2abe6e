"""Trial backends (issue 13): options checked with the spec, strategies hand whole batches of
independent trials to the backend, and Ray Tune trials give the in-process records and resume."""
from __future__ import annotations

import json
import shutil
import sys

import pytest

from nasgraph.backends import open_backend
from nasgraph.backends.in_process import InProcess
from nasgraph.cli import main
from nasgraph.errors import NasgraphError

TWO = "candidates: [softmax, linear]"


def _spec(tiny_spec, strategy: str = "halving", extra: str = ""):
    """The tiny spec with a budget a trial strategy can split; one torch thread (Ray's per-trial CPU)."""
    path = tiny_spec("layer", strategy, extra)
    text = path.read_text().replace("seeds: [0], steps: 6,", "seeds: [0], steps: 16,")
    path.write_text(text.replace("train: {steps: 6,", "train: {steps: 16, threads: 1,"))
    return path


def _records(run) -> dict[str, float]:
    return {f"{p.parent.name}/{p.name}": json.loads(p.read_text())["score"]
            for p in sorted((run / "trials").glob("*/budget*.json"))}


@pytest.mark.parametrize("extra,key,message", [
    (", backend: rayy", "search.backend", "unknown trial backend 'rayy' (did you mean 'ray'?)"),
    (", workers: 4", "search.workers", "workers 4 does not apply to backend 'in-process'"),
    (", address: auto", "search.address", "address 'auto' does not apply to backend 'in-process'"),
    (", backend: ray, workers: 0", "search.workers", "greater than 0"),
    (", gpus_per_trial: 0.5", "search.gpus_per_trial", "gpus_per_trial 0.5 does not apply to backend 'in-process'"),
    (", backend: ray, gpus_per_trial: 1.5", "search.gpus_per_trial", "a whole number of GPUs"),
    (", backend: ray, gpus_per_trial: 0", "search.gpus_per_trial", "greater than 0"),
])
def test_backend_options_are_checked_with_the_spec(tiny_spec, tmp_path, capsys, extra, key, message):
    assert main(["search", str(_spec(tiny_spec, extra=extra)), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert key in err and message in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_ray_backend_without_ray_says_how_to_install(tiny_spec, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)           # import ray -> ImportError
    spec = _spec(tiny_spec)
    assert main(["search", str(spec), "--out", str(tmp_path / "run"), "--backend", "ray", "--no-progress"]) == 2
    assert "pip install 'nasgraph[ray]'" in capsys.readouterr().err


class FakeRay:
    """The few `ray` calls the backend makes when it opens, on a cluster of `gpus` GPUs."""

    def __init__(self, gpus: float):
        self.gpus, self.started = gpus, False

    def is_initialized(self):
        return self.started

    def init(self, **kwargs):
        self.started = True

    def cluster_resources(self):
        return {"CPU": 2.0, **({"GPU": self.gpus} if self.gpus else {})}

    def shutdown(self):
        self.started = False


@pytest.mark.parametrize("gpus", [0, 0.5])
def test_a_gpu_share_the_cluster_lacks_is_refused_before_any_trial_waits(monkeypatch, gpus):
    fake = FakeRay(gpus)
    monkeypatch.setitem(sys.modules, "ray", fake)
    backend = open_backend("ray", workers=2, gpus_per_trial=1)
    with pytest.raises(NasgraphError, match=f"gpus_per_trial 1: the local Ray .* has {gpus:g} GPUs; drop"):
        backend.open()
    assert not fake.started                       # the Ray nasgraph started is shut down again


def test_trials_holding_a_gpu_share_ask_ray_for_it_and_train_on_cuda(monkeypatch):
    fake = FakeRay(1)
    monkeypatch.setitem(sys.modules, "ray", fake)
    with open_backend("ray", workers=4, gpus_per_trial=0.25) as backend:
        assert backend.resources() == {"cpu": 1, "gpu": 0.25} and backend.device == "cuda"
    assert not fake.started
    cpu_only = open_backend("ray", workers=2)
    assert cpu_only.resources() == {"cpu": 1} and cpu_only.device is None
    assert open_backend().device is None          # in-process: the search's own train.device


def test_a_trial_trains_where_the_backend_placed_it(tiny_spec, tmp_path, monkeypatch):
    import nasgraph.search.run as runner
    import nasgraph.search.trials as trials

    placed = []
    real = trials.train_trial
    monkeypatch.setattr(trials, "train_trial", lambda ctx, r, threads=None, device=None:
                        placed.append(device) or real(ctx, r, threads, device))

    class OnCpu(Recording):
        device = "cpu"               # what a GPU-share backend says ("cuda"), here a device this machine has

    monkeypatch.setattr(runner, "open_backend", lambda *a: OnCpu())
    assert main(["search", str(_spec(tiny_spec, "teacher")), "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    assert placed and set(placed) == {"cpu"}


class Recording(InProcess):
    """The in-process backend, remembering each batch it was handed."""
    batches: list[list[str]] = []

    def map(self, fn, items, *, names, **kwargs):
        Recording.batches.append(list(names))
        return super().map(fn, items, names=names, **kwargs)


@pytest.mark.parametrize("strategy", ["halving", "teacher"])
def test_strategies_submit_independent_trials_as_batches(tiny_spec, tmp_path, monkeypatch, strategy):
    import nasgraph.search.run as runner

    monkeypatch.setattr(runner, "open_backend", lambda *a: Recording())
    Recording.batches = []
    assert main(["search", str(_spec(tiny_spec, strategy)), "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    sizes = [len(b) for b in Recording.batches]
    if strategy == "halving":       # 3 types x 2 seeds, then the better 2 x 2 seeds
        assert sizes == [6, 4]
    else:       # the teacher, then its students at once (2 layers x 2 cheaper types + 2 homogeneous)
        assert sizes[:2] == [1, 6] and Recording.batches[0][0].startswith("teacher-")
    trained = {p.name for p in (tmp_path / "run" / "trials").iterdir()}
    assert trained == {n for b in Recording.batches for n in b}


def test_run_trials_refuses_a_batch_naming_a_trial_twice(tmp_path):
    from types import SimpleNamespace

    from nasgraph.search.trials import TrialRequest, run_trials

    ctx = SimpleNamespace(out=tmp_path, backend=open_backend())
    twice = [TrialRequest({"L0": [0]}, 0, 2, "a-s0"), TrialRequest({"L0": [1]}, 0, 2, "a-s0")]
    with pytest.raises(ValueError, match="names a trial twice"):
        run_trials(ctx, twice)


@pytest.mark.slow
def test_ray_trials_equal_in_process_and_resume_reruns_only_the_missing_trial(tiny_spec, tmp_path):
    pytest.importorskip("ray.tune", reason="the [ray] extra (pip install 'nasgraph[ray]') is not installed")
    spec = _spec(tiny_spec, extra=", replicas: 1")
    spec.write_text(spec.read_text().replace("candidates: [softmax, linear, {local: {window: 4}}]", TWO))
    local, ray_run, cut = tmp_path / "local", tmp_path / "ray", tmp_path / "cut"
    ray_args = ["--backend", "ray", "--workers", "2", "--no-progress"]
    assert main(["search", str(spec), "--out", str(local), "--no-progress"]) == 0
    assert main(["search", str(spec), "--out", str(ray_run), *ray_args]) == 0
    expected = _records(local)
    assert len(expected) == 2 and _records(ray_run) == expected                       # one rung: 2 trials
    search = lambda run: {k: json.loads((run / "search.json").read_text())[k] for k in ("choice", "labels")}
    assert search(ray_run) == search(local)
    [batch] = (ray_run / "ray").iterdir()
    assert sorted(p.name for p in batch.iterdir() if p.is_dir()) == sorted(k.split("/")[0] for k in expected)

    # an interruption after the first trial: the second trial's folder and the search's outputs are gone
    shutil.copytree(local, cut)
    kept, lost = sorted((cut / "trials").iterdir())
    shutil.rmtree(lost)
    for name in ("search.json", "evidence.json", "derived.yaml"):
        (cut / name).unlink()
    stamp = {p: p.stat().st_mtime_ns for p in kept.rglob("*") if p.is_file()}
    assert main(["search", str(spec), "--out", str(cut), "--resume", *ray_args]) == 0     # a resume may change backend
    [batch] = (cut / "ray").iterdir()
    assert [p.name for p in batch.iterdir() if p.is_dir()] == [lost.name]               # only the missing trial ran
    assert {p: p.stat().st_mtime_ns for p in kept.rglob("*") if p.is_file()} == stamp
    assert _records(cut) == expected and search(cut) == search(local)
