"""`nasgraph predict` and Predictor on the exported tiny model: agreement with torch, text/TSV/JSON
inputs, max_len, top-k, the provider actually used."""
from __future__ import annotations

import json
import textwrap

import numpy as np
import onnxruntime as ort
import pytest
import torch

from deploy_helpers import ONE_LAYER
from exporters.errors import ProviderError
from exporters.model_export import unpadded_path
from exporters.predict import Predictor, read_inputs
from nasgraph.cli import main
from nasgraph.errors import SequenceTooLongError


def test_predictor_agrees_with_torch(deployed):
    from nasgraph.tasks.tokenize import Tokenizer
    from nasgraph.training.run import load_trained

    _, run, path = deployed
    texts = ["a b c", "b b b b a c d", "e"]
    predictions = Predictor(path).predict(texts)
    _, model = load_trained(run)
    tok = Tokenizer.from_dict(json.loads((run / "task.json").read_text())["tokenizer"])
    for text, (label, probs) in zip(texts, predictions):
        with torch.no_grad():
            p = torch.softmax(model(torch.tensor([tok.encode(text)])), -1)[0]
        assert label == str(int(p.argmax())) and list(probs) == ["0", "1"]
        np.testing.assert_allclose(list(probs.values()), p.numpy(), atol=1e-5)


def test_predict_text_lines_and_tsv(deployed, tmp_path, capsys):
    _, _, path = deployed
    assert main(["predict", str(path), "a b c d"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].split("\t")[0] in ("0", "1") and "a b c d" in out[0]
    lines = tmp_path / "texts.txt"
    lines.write_text("a b c\n\nb b b a\n")
    assert main(["predict", str(path), str(lines), "--json"]) == 0
    records = [json.loads(l) for l in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in records] == ["a b c", "", "b b b a"]      # the blank line keeps its place
    assert records[1]["label"] is None and [r["line"] for r in records] == [1, 2, 3]
    records = records[::2]
    assert all(abs(sum(r["probs"].values()) - 1) < 1e-6 and r["label"] in r["probs"] for r in records)
    tsv = tmp_path / "data.tsv"
    tsv.write_text("Source\tTarget\na b c\t1\nb c d e\t0\n")
    assert read_inputs(str(tsv), ["0", "1"]).targets == ["1", "0"]
    assert main(["predict", str(path), str(tsv)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3 and out[-1].startswith("accuracy ") and "/2)" in out[-1]


def test_predict_truncates_to_max_len_and_refuses_longer_tokens(deployed, capsys):
    _, _, path = deployed
    p = Predictor(path)
    long_text = " ".join("abcdef"[i % 6] for i in range(40))
    truncated = " ".join(long_text.split()[:11])  # <cls> + 11 symbols = max_len 12
    assert p.predict([long_text]) == p.predict([truncated])
    assert p.truncated([long_text, truncated]) == [True, False]
    assert main(["predict", str(path), long_text]) == 0
    assert "warning: 1 of 1 input(s) had more than max_len 12 tokens" in capsys.readouterr().err
    assert main(["predict", str(path), long_text, "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["truncated"] is True and json.loads(err)["summary"]["truncated"] == 1
    with pytest.raises(SequenceTooLongError, match="13 exceeds the model's max_len 12"):
        p.logits(np.full((1, 13), 2))
    # a raw ONNX Runtime session (no Python check in front) refuses it inside the graph, both graphs
    for graph in (path, unpadded_path(path)):
        session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
        assert session.run(None, {"tokens": np.full((1, 12), 2, dtype=np.int64)})[0].shape == (1, 2)
        with pytest.raises(Exception, match="sequence length exceeds the model's max_len 12"):
            session.run(None, {"tokens": np.full((1, 13), 2, dtype=np.int64)})


def test_unbounded_model_without_positions_enforces_max_len_in_the_graph(tmp_path):
    """No position table and unbounded attention: ONNX Runtime used to run such inputs silently."""
    from nasgraph.spec import load_spec
    from nasgraph.training.run import build_discrete

    spec = tmp_path / "one.yaml"
    spec.write_text(textwrap.dedent(ONE_LAYER).replace("attention: softmax", "attention: linear, position: none"))
    _, model = build_discrete(load_spec(spec))
    torch.save({"model": model.state_dict()}, tmp_path / "last.pt")
    out = tmp_path / "m.onnx"
    assert main(["export", str(spec), "--checkpoint", str(tmp_path / "last.pt"), "-o", str(out)]) == 0
    for graph in (out, unpadded_path(out)):
        session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
        with pytest.raises(Exception, match="max_len 12"):
            session.run(None, {"tokens": np.full((2, 40), 2, dtype=np.int64)})


def test_predict_top_k(deployed, capsys):
    _, _, path = deployed
    assert main(["predict", str(path), "a b c", "--top-k", "1", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["top_k"] == [{"label": record["label"], "prob": max(record["probs"].values())}]
    assert main(["predict", str(path), "a b c", "--top-k", "1"]) == 0
    label, shown, _ = capsys.readouterr().out.split("\t")
    assert shown.count(":") == 1 and shown.startswith(label + ":")
    assert main(["predict", str(path), "a b c", "--top-k", "0"]) == 2


@pytest.mark.filterwarnings("ignore:Specified provider")
def test_provider_actually_used_is_asserted(deployed, monkeypatch, capsys):
    _, _, path = deployed
    assert main(["predict", str(path), "a b", "--provider", "cuda"]) == 2
    assert "CUDAExecutionProvider" in capsys.readouterr().err
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(ort.InferenceSession, "get_providers", lambda self: ["CPUExecutionProvider"])
    with pytest.raises(ProviderError, match="fell back to CPUExecutionProvider"):
        Predictor(path, "cuda")
