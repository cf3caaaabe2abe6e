"""benchmarks/lm_tasks.py at tiny sizes: spec overrides (--set) reach every run, CPU seconds are
recorded, and runs with different overrides refuse to share a table."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--part", "mqar", "--steps", "2", "--batch-size", "4", "--mqar-len", "24", "--pairs", "2", "--symbols", "4",
        "--d-model", "8", "--heads", "1", "--layers", "1", "--types", "softmax"]


@pytest.fixture
def lm_tasks(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("lm_tasks_bench", ROOT / "benchmarks" / "lm_tasks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "OUT", tmp_path)
    return module


def run(module, monkeypatch, *argv: str) -> dict:
    monkeypatch.setattr(sys, "argv", ["lm_tasks.py", *argv])
    module.main()
    tag = argv[argv.index("--tag") + 1]
    return json.loads((module.OUT / f"lm_tasks_mqar{tag}.json").read_text())


def test_set_overrides_reach_the_trained_model_and_cpu_seconds_are_kept(lm_tasks, monkeypatch):
    learned = run(lm_tasks, monkeypatch, *TINY, "--tag", "_a")
    bare = run(lm_tasks, monkeypatch, *TINY, "--set", "model.position=none", "task.query_gaps=power_law",
               "--tag", "_b")
    assert learned["rows"][0]["params"] - bare["rows"][0]["params"] == 24 * 8   # the (T, d) position table
    assert bare["args"]["set"] == ["model.position=none", "task.query_gaps=power_law"]
    assert all(r["cpu_s"] >= 0 for r in learned["rows"] + bare["rows"])
    table = (lm_tasks.OUT / "lm_tasks_mqar_b.md").read_text()
    assert "(CPU s)" in table and "--set model.position=none task.query_gaps=power_law" in table
    with pytest.raises(SystemExit, match="set"):
        lm_tasks.joined("mqar", [lm_tasks.OUT / "lm_tasks_mqar_a.json", lm_tasks.OUT / "lm_tasks_mqar_b.json"], "_j")


def test_a_bad_override_is_refused_naming_the_key(lm_tasks, monkeypatch):
    from nasgraph.errors import NasgraphError

    with pytest.raises(NasgraphError, match="query_gaps"):
        run(lm_tasks, monkeypatch, *TINY, "--set", "task.query_gaps=sometimes", "--tag", "_c")
