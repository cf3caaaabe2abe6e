"""The Python API: the example of docs/python_api.md runs as written; results carry the run files' keys."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import nasgraph.api as ng
from nasgraph.errors import NasgraphError
from nasgraph.spec import load_spec

DOC = Path(__file__).resolve().parents[1] / "docs" / "python_api.md"


def test_the_documented_example_runs(tmp_path, monkeypatch, capsys):
    code = re.search(r"## Example.*?```python\n(.*?)```", DOC.read_text(), re.S).group(1)
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code, str(DOC), "exec"), scope)
    out = capsys.readouterr().out
    assert out.startswith("9 architectures") and "parity ok" in out
    found, trained, timed = scope["found"], scope["trained"], scope["timed"]
    assert found.to_json() == json.loads((tmp_path / "runs/search/search.json").read_text())
    assert trained.to_json() == json.loads((tmp_path / "runs/train/result.json").read_text())
    assert trained.result["steps"] == 12                   # the override applied
    assert timed.to_json()["rows"] and (tmp_path / "runs/bench/report.json").exists()


def test_a_loaded_spec_is_accepted_but_not_overridden(tiny_spec, tmp_path):
    doc = load_spec(tiny_spec())
    assert ng.compile(doc).summary.space_size == 9
    with pytest.raises(NasgraphError, match="already loaded"):
        ng.compile(doc, ["train.steps=3"])


def test_derive_needs_a_finished_search(tmp_path):
    with pytest.raises(NasgraphError, match="not a finished search run"):
        ng.derive(tmp_path, tmp_path / "d.yaml")
