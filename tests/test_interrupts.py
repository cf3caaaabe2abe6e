"""Ctrl-C in the middle of writing: the command stops with exit 130 and one line, and leaves no half file
and no staging folder where the output was to go."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_ctrl_c_during_export_leaves_nothing_behind(deployed, tmp_path):
    _, run, _ = deployed
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "nasgraph", "export", str(run), "-o", str(tmp_path / "m.onnx")],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not list(tmp_path.glob(".m.onnx.*")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)                                      # until the export is being staged
    assert proc.poll() is None, "the export ended before it was staged"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    err = err.decode()
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert [l for l in err.splitlines() if "interrupted" in l] == ["nasgraph export: interrupted"]
    assert os.listdir(tmp_path) == []
