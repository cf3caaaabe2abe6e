"""Careless arguments to predict / generate / bench: the wrong kind of path as the model, a folder as
the input, text that is not valid UTF-8 on a strict terminal. Each is one clean line (or a clean run)."""
from __future__ import annotations

import io
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
