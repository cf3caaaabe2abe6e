"""Input files of any kind: a named pipe nobody writes to, /dev/zero, a pipe that is written slowly;
the command answers (one line, exit 2) or reads them, never waits forever or fills memory."""
from __future__ import annotations

import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from nasgraph.errors import SpecError
from nasgraph.infile import read_bounded
from nasgraph.spec import load_spec
from spec_error_cases import GOOD

ROOT = Path(__file__).resolve().parents[1]


def nasgraph(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    """The CLI in a child limited to 2 GB of address space and 60 s (a hang or an unbounded read fails)."""
    limit = lambda: resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))   # noqa: E731
    return subprocess.run([sys.executable, "-m", "nasgraph", *argv], cwd=cwd, capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)}, preexec_fn=limit)


def one_line(proc: subprocess.CompletedProcess, *names: str) -> None:
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    (line,) = proc.stderr.splitlines()
    assert all(n in line for n in names), line


def test_a_named_pipe_nobody_writes_to_is_one_line_not_a_hang(tmp_path):
    os.mkfifo(tmp_path / "spec.yaml")
    one_line(nasgraph("compile", "spec.yaml", cwd=tmp_path), "spec.yaml", "named pipe with nothing to read")
    one_line(nasgraph("predict", "spec.yaml", "a b", cwd=tmp_path), "spec.yaml", "not a regular file")


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_an_endless_file_stops_at_the_limit():
    assert len(read_bounded("/dev/zero", 1000)) == 1001
    one_line(nasgraph("compile", "/dev/zero", cwd=ROOT), "/dev/zero", "a spec is at most 1,048,576 bytes")


def test_a_pipe_with_a_slow_writer_is_read_whole(tmp_path):
    """`nasgraph compile <(make-spec)`: the writer may not have written yet when the spec is opened."""
    read, write = os.pipe()

    def slow():
        time.sleep(0.3)
        os.write(write, GOOD.encode())
        os.close(write)

    threading.Thread(target=slow).start()
    try:
        assert load_spec(f"/proc/self/fd/{read}").spec.name == "demo"
    finally:
        os.close(read)


def test_a_closed_pipe_and_a_folder_are_located_errors(tmp_path):
    read, write = os.pipe()
    os.close(write)
    try:
        with pytest.raises(SpecError, match="nothing to read|spec file is empty"):
            load_spec(f"/proc/self/fd/{read}")
    finally:
        os.close(read)
    with pytest.raises(SpecError, match="is a directory"):
        load_spec(tmp_path)


def test_predict_inputs_that_never_end(deployed, tmp_path):
    """`predict MODEL -` with /dev/zero as stdin read without bound; a named pipe as INPUT was 'no such file'."""
    _, _, onnx = deployed
    os.mkfifo(tmp_path / "texts.txt")
    one_line(nasgraph("predict", str(onnx), "texts.txt", cwd=tmp_path), "texts.txt", "not a regular file", "'-'")
    with open("/dev/zero", "rb") as zero:
        proc = subprocess.run([sys.executable, "-m", "nasgraph", "predict", str(onnx), "-"], stdin=zero, timeout=120,
                              capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
                              preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30)))
    one_line(proc, "stdin", "more than 268,435,456 bytes")
