"""Careless arguments to predict / generate / bench: the wrong kind of path as the model, a folder as
the input, text that is not valid UTF-8 on a strict terminal. Each is one clean line (or a clean run)."""
from __future__ import annotations

import io
import os
import json
import sys
import textwrap

import pytest

from cli_checks import refused
from nasgraph.cli import main

SPEC = """
name: tx
task: {kind: text, path: rev.tsv, max_len: 32}
model: {d_model: 16, n_heads: 2, n_layers: 1, attention: softmax}
train: {steps: 2, batch_size: 8, eval_every: 2}
"""


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    """(spec, train run, .onnx) of a tiny byte-level text classifier."""
    w = tmp_path_factory.mktemp("abuse")
    rows = ["text\tlabel"] + [("good fun " if i % 2 else "bad dull ") * 3 + ("\tpos" if i % 2 else "\tneg")
                              for i in range(120)]
    (w / "rev.tsv").write_text("\n".join(rows) + "\n")
    (w / "spec.yaml").write_text(textwrap.dedent(SPEC))
    assert main(["train", str(w / "spec.yaml"), "--out", str(w / "run"), "--no-progress"]) == 0
    assert main(["export", str(w / "run"), "-o", str(w / "tx.onnx"), "--no-progress"]) == 0
    return w / "spec.yaml", w / "run", w / "tx.onnx"


def test_a_non_utf8_text_prints_on_a_strict_terminal(classifier, monkeypatch):
    """`predict --text $'good \\xff fun'` ended in UnicodeEncodeError echoing the text (byte tokenizer)."""
    _, _, onnx = classifier
    for extra in ([], ["--json"]):
        out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict")
        monkeypatch.setattr(sys, "stdout", out)
        assert main(["predict", str(onnx), "--text", "good \udcff fun", *extra]) == 0
        out.flush()
        shown = out.buffer.getvalue().decode("utf-8")
        assert "good \ufffd fun" in (json.loads(shown)["text"] if extra else shown)


@pytest.mark.parametrize("command", ["predict", "generate"])
def test_the_wrong_kind_of_path_as_the_model(classifier, tmp_path, capsys, command):
    spec, run, _ = classifier
    (tmp_path / "empty").mkdir()
    extra = ["a b"] if command == "predict" else []
    refused(capsys, [command, tmp_path / "nope.onnx", *extra], "nope.onnx", "no such")
    refused(capsys, [command, spec, *extra], "spec.yaml", "nasgraph train", keep=(spec,))
    refused(capsys, [command, tmp_path / "empty", *extra], "empty", "folder" if command == "predict" else "run folder")
    if command == "predict":
        refused(capsys, ["predict", run, "a b"], "train run folder", "nasgraph export", keep=(run,))


def test_a_folder_as_the_input_is_refused_not_classified_as_text(classifier, tmp_path, capsys):
    """A folder given as INPUT was classified as the text of its name."""
    _, _, onnx = classifier
    refused(capsys, ["predict", onnx, tmp_path], str(tmp_path), "is a folder", "--text", keep=(onnx,))


def test_an_output_that_is_a_pipe_or_device_is_never_replaced(classifier, tmp_path, capsys):
    """`export -o /dev/full --force` (as root) renamed the export over the device node itself; a named pipe
    stands in for the device here. derive's spec writer and export share the check."""
    import stat

    from nasgraph.errors import NasgraphError
    from nasgraph.spec.dump import dump_spec

    _, run, _ = classifier
    pipe = tmp_path / "pipe.onnx"
    os.mkfifo(pipe)
    refused(capsys, ["export", run, "-o", pipe, "--force", "--no-progress"], "pipe.onnx", "named pipe", keep=(run,))
    with pytest.raises(NasgraphError, match="named pipe"):
        dump_spec({"name": "x"}, pipe, overwrite=True)
    assert stat.S_ISFIFO(os.stat(pipe).st_mode)


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc (a folder that takes no files)")
def test_a_folder_that_takes_no_files_is_one_line(classifier, capsys):
    """export -o /proc/x.onnx and data -o /proc/x.tsv ended in mkdtemp's / open's FileNotFoundError traceback
    (what a read-only folder does for a user who is not root)."""
    _, run, _ = classifier
    refused(capsys, ["export", run, "-o", "/proc/x.onnx", "--no-progress"], "cannot write /proc/x.onnx")
    refused(capsys, ["data", "listops", "--n", "3", "-o", "/proc/x.tsv"], "cannot write /proc/x.tsv")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (a stdout that is always full)")
def test_a_full_stdout_is_one_line(classifier):
    """`nasgraph compile spec.yaml > /dev/full` ended in an OSError traceback (ENOSPC) from print."""
    import subprocess
    from pathlib import Path

    spec, _, _ = classifier
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "nasgraph", "compile", str(spec)], stdout=full,
                              stderr=subprocess.PIPE, env=env, timeout=120)
    err = proc.stderr.decode()
    assert proc.returncode == 2 and "Traceback" not in err and "Exception ignored" not in err, err
    assert [l for l in err.splitlines() if "error" in l] == [err.strip().splitlines()[-1]]
    assert "cannot write" in err and "No space left" in err


def test_bench_refuses_a_call_past_the_token_limit(classifier, tmp_path, capsys):
    """`bench --batch 100000000000` ended in torch's allocator traceback (6.4 TB of token ids)."""
    _, run, onnx = classifier
    for target in (onnx, run):
        refused(capsys, ["bench", target, "--out", tmp_path / "b", "--batch", "100000000000", "--no-progress"],
                "--batch 100,000,000,000", "tokens in one call", keep=(target,))
    assert not (tmp_path / "b").exists()


def test_the_timing_budget_holds_without_warm_up_calls():
    """`bench --repeats 100000000000` with the spec's warmup: 0 ran 10^11 calls: the 5 s budget was judged
    from the warm-up calls only."""
    import time

    from exporters.latency import measure

    stats = measure(lambda: time.sleep(0.01), warmup=0, repeats=10 ** 11, budget_s=0.1)
    assert 3 <= stats.repeats < 50
