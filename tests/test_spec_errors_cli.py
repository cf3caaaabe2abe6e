"""`nasgraph compile` on a bad spec or override: exit code 2, one line on stderr, no traceback."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nasgraph import attention
from nasgraph.cli import main
from spec_error_cases import GOOD

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("text, expected", [
    (GOOD.replace("d_model: 32", "d_model: 30"), "spec.yaml:5:3: model.n_heads: d_model 30 is not divisible"),
    ("name: !!python/name:os.system\n", "spec.yaml:1:7: name: tag '!!python/name:os.system' is not allowed"),
    (None, "spec.yaml: spec file not found"),
], ids=["semantic", "python-tag", "missing-file"])
def test_cli_compile_bad_spec_exits_2_with_one_line(text, expected, tmp_path: Path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if text is not None:
        (tmp_path / "spec.yaml").write_text(text)
    assert main(["compile", "spec.yaml"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1, err
    assert err.startswith(f"nasgraph compile: error: {expected}"), err


def test_cli_bad_override_exits_2(tmp_path: Path, capsys):
    (tmp_path / "spec.yaml").write_text(GOOD)
    assert main(["compile", str(tmp_path / "spec.yaml"), "--set", "train.stepz=5"]) == 2
    assert capsys.readouterr().err == (
        "nasgraph compile: error: <--set train.stepz=5>: train.stepz: no such key in the spec; the nearest "
        "valid path is train.steps\n")


def test_cli_process_prints_no_traceback(tmp_path: Path):
    """The real process: exit code 2, one line on stderr, nothing on stdout."""
    (tmp_path / "bad.yaml").write_text(GOOD.replace("candidates: [softmax, linear]", "candidates: [softmaxx]"))
    result = subprocess.run([sys.executable, "-m", "nasgraph", "compile", "bad.yaml"], capture_output=True,
                            text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert result.returncode == 2 and result.stdout == "", result.stderr
    assert result.stderr.splitlines() == [
        "nasgraph compile: error: bad.yaml:8:18: model.attention.candidates[0]: unknown attention 'softmaxx' "
        f"(did you mean 'softmax'?); valid: {', '.join(attention.names())}"]
