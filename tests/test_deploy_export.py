"""Verified export on the tiny task: metadata, ORT parity, the unpadded graph, best/last weights,
refusals, int8 with its measured accuracy change (the trained model is the session's `deployed`)."""
from __future__ import annotations

import json
import textwrap

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import yaml

from deploy_helpers import ONE_LAYER, unpadded_batch, val_batch
from exporters.fused_attention import DECOMPOSED, FLASH, NO_SOFTMAX, attention_kernels
from exporters.model_export import unpadded_path
from exporters.predict import Predictor
from exporters.runtime import read_metadata
from nasgraph.cli import main


def test_export_carries_metadata_and_matches_ort(deployed):
    from nasgraph.training.run import load_trained

    spec, run, path = deployed
    meta = read_metadata(path)
    derived = yaml.safe_load(meta["nasgraph.spec"])
    assert derived["model"]["layers"][0]["attention"]["heads"] == ["softmax", {"local": {"window": 4}}]
    task = json.loads((run / "task.json").read_text())
    assert json.loads(meta["nasgraph.tokenizer"]) == task["tokenizer"]
    assert json.loads(meta["nasgraph.vocab"]) == task["vocab"]
    assert json.loads(meta["nasgraph.class_names"]) == ["0", "1"] and meta["nasgraph.max_len"] == "12"
    assert meta["nasgraph.exporter"] == "dynamo" and meta["nasgraph.version"]
    assert float(meta["nasgraph.parity_max_abs_diff"]) <= float(meta["nasgraph.parity_atol"]) == 1e-4
    assert "val: 4 shortest padded to T=" in meta["nasgraph.parity_inputs"]
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == ["tokens"] and [o.name for o in graph.output] == ["logits"]
    assert [d.dim_param for d in graph.input[0].type.tensor_type.shape.dim] == ["batch", "seq"]
    _, model = load_trained(run)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for B, T in ((5, 9), (1, 12)):
        tokens = val_batch(B, T)
        with torch.no_grad():
            expected = model(tokens).numpy()
        np.testing.assert_allclose(session.run(None, {"tokens": tokens.numpy()})[0], expected, atol=1e-4)


def test_unpadded_graph_matches_and_takes_the_fused_kernel(deployed):
    """The mask-free graph beside the model: same outputs on batches without padding, ORT's flash
    MultiHeadAttention for the softmax heads, and a clear failure on padding."""
    from nasgraph.training.run import load_trained

    _, run, path = deployed
    unpadded = unpadded_path(path)
    meta = read_metadata(unpadded)
    assert meta["nasgraph.padding"] == "none" and read_metadata(path)["nasgraph.unpadded_variant"] == unpadded.name
    assert float(meta["nasgraph.parity_max_abs_diff"]) <= 1e-4 and "the longest alone" in meta["nasgraph.parity_inputs"]
    padded_kernels, unpadded_kernels = attention_kernels(path), attention_kernels(unpadded)
    assert unpadded_kernels == {"model.nodes.L0__attention.inner": f"{FLASH} + {DECOMPOSED}",  # softmax + local heads
                                "model.nodes.L1__attention.inner": NO_SOFTMAX}, unpadded_kernels
    assert padded_kernels["model.nodes.L0__attention.inner"] == DECOMPOSED
    assert json.loads(meta["nasgraph.attention_kernels"]) == unpadded_kernels           # recorded in each file
    assert json.loads(read_metadata(path)["nasgraph.attention_kernels"]) == padded_kernels
    _, model = load_trained(run)
    sessions = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in (path, unpadded)]
    for B, T in ((1, 12), (3, 5)):
        tokens = unpadded_batch(B, T)
        with torch.no_grad():
            expected = model(tokens).numpy()
        for session in sessions:
            np.testing.assert_allclose(session.run(None, {"tokens": tokens.numpy()})[0], expected, atol=1e-4)
    with pytest.raises(Exception, match="padding"):
        sessions[1].run(None, {"tokens": val_batch(2, 12).numpy() * 0})


def test_predict_picks_the_unpadded_graph_for_batches_without_padding(deployed):
    _, _, path = deployed
    p = Predictor(path)
    unpadded, padded = unpadded_batch(2, 5).numpy(), val_batch(4, 12).numpy()
    assert (unpadded != 0).all() and (padded == 0).any()
    both = p.logits(unpadded)
    assert p.last_graph == "unpadded"
    p.logits(padded)
    assert p.last_graph == "padded"
    only_padded = Predictor(path)
    del only_padded.sessions["unpadded"]
    np.testing.assert_allclose(only_padded.logits(unpadded), both, atol=1e-5)
    assert only_padded.last_graph == "padded"
    # given the unpadded file alone, rows with padding run in groups of equal length
    alone = Predictor(unpadded_path(path))
    np.testing.assert_allclose(alone.logits(padded), p.logits(padded), atol=1e-5)
    assert alone.last_graph == "unpadded-by-length"


def test_export_takes_the_best_validation_checkpoint_and_says_which(deployed, tmp_path, capsys):
    import shutil

    from nasgraph.spec import load_spec
    from nasgraph.training.run import build_discrete

    spec, trained_run, path = deployed
    vals = [json.loads(l) for l in (trained_run / "metrics.jsonl").read_text().splitlines()]
    vals = [v for v in vals if v.get("split") == "val"]
    best_step = max(vals, key=lambda v: v["acc"])["step"]  # the first of equal maxima
    assert torch.load(trained_run / "checkpoints" / "best.pt", weights_only=True)["step"] == best_step
    assert read_metadata(path)["nasgraph.checkpoint"].startswith(f"best validation checkpoint (step {best_step},")
    # a run whose best weights differ from its last ones: each choice exports its own weights
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    torch.manual_seed(123)
    _, other = build_discrete(load_spec(spec))
    torch.save({"model": other.state_dict(), "step": 1, "val": {"acc": 0.99}}, run / "checkpoints" / "best.pt")
    _, last = build_discrete(load_spec(spec))
    last.load_state_dict(torch.load(run / "checkpoints" / "last.pt", weights_only=False)["model"])
    tokens = val_batch(3, 9)
    for argv, model, said in ((["--weights", "best"], other, "best validation checkpoint (step 1, val acc 0.9900)"),
                              (["--weights", "last"], last, "last checkpoint")):
        out = tmp_path / f"{argv[1]}.onnx"
        assert main(["export", str(run), "-o", str(out), *argv]) == 0
        assert f"weights: {said}" in capsys.readouterr().out
        session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        with torch.no_grad():
            expected = model.eval()(tokens).numpy()
        np.testing.assert_allclose(session.run(None, {"tokens": tokens.numpy()})[0], expected, atol=1e-4)
    (run / "checkpoints" / "best.pt").unlink()  # a run deployed before best.pt existed
    assert main(["export", str(run), "-o", str(tmp_path / "old.onnx")]) == 0
    assert "weights: last checkpoint (this run has no checkpoints/best.pt" in capsys.readouterr().out


def test_export_refuses_to_overwrite(deployed, tmp_path, capsys):
    _, run, _ = deployed
    out = tmp_path / "model.onnx"
    out.write_text("precious")
    assert main(["export", str(run), "-o", str(out)]) == 2
    assert out.read_text() == "precious" and "--force" in capsys.readouterr().err


def test_parity_failure_refuses_with_numbers_and_leaves_no_file(tmp_path, capsys):
    """A spec + checkpoint export (one small layer, untrained weights) held to an impossible tolerance."""
    from nasgraph.spec import load_spec
    from nasgraph.training.run import build_discrete

    spec = tmp_path / "one.yaml"
    spec.write_text(textwrap.dedent(ONE_LAYER))
    _, model = build_discrete(load_spec(spec))
    torch.save({"model": model.state_dict()}, tmp_path / "last.pt")
    out = tmp_path / "out" / "model.onnx"
    out.parent.mkdir()
    argv = ["export", str(spec), "--checkpoint", str(tmp_path / "last.pt"), "-o", str(out), "--atol", "1e-12"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "parity MISMATCH (atol 1e-12" in err and "[4x12] max_abs_diff=" in err
    assert list(out.parent.iterdir()) == []  # no model, no staging folder


def test_checkpoint_of_another_model_is_refused(deployed, tmp_path, capsys):
    spec, run, _ = deployed
    argv = ["export", str(spec), "--checkpoint", str(run / "checkpoints" / "last.pt"), "-o",
            str(tmp_path / "m.onnx"), "--set", "model.d_model=32"]
    assert main(argv) == 2
    assert "does not fit the spec's model" in capsys.readouterr().err


def test_int8_export_records_the_measured_accuracy_change(deployed, tmp_path, capsys):
    _, run, path = deployed
    out = tmp_path / "int8.onnx"
    assert main(["export", str(run), "-o", str(out), "--quantize", "int8", "--max-accuracy-drop", "100",
                 "--no-progress"]) == 0
    assert "int8: test accuracy" in capsys.readouterr().out
    for graph in (out, unpadded_path(out)):
        q = json.loads(read_metadata(graph)["nasgraph.quantization"])
        assert q["mode"] == "int8" and q["split"] == "test" and q["examples"] == 64
        assert q["drop_points"] == pytest.approx((q["fp32_acc"] - q["int8_acc"]) * 100)
        assert q["int8_bytes"] < q["fp32_bytes"]
        ops = {n.op_type for n in onnx.load(str(graph)).graph.node}
        assert {"MatMulInteger", "DynamicQuantizeLinear"} <= ops
    # the fp32 accuracy is the deployed model's own test accuracy (measured again, with ONNX Runtime)
    assert q["fp32_acc"] == pytest.approx(json.loads((run / "result.json").read_text())["test"]["acc"], abs=1 / 64)
    tokens = unpadded_batch(3, 6).numpy()
    padded, unpadded = (ort.InferenceSession(str(g), providers=["CPUExecutionProvider"]) for g in (out, unpadded_path(out)))
    np.testing.assert_allclose(padded.run(None, {"tokens": tokens})[0], unpadded.run(None, {"tokens": tokens})[0], atol=1e-2)


def test_int8_export_is_refused_beyond_the_tolerance(deployed, tmp_path, monkeypatch, capsys):
    """The int8 graph's measured accuracy, lowered by 5 points: over a 1-point tolerance, nothing lands."""
    import exporters.quantize as quantize

    measured = quantize.onnx_accuracy

    def five_points_lower_for_int8(path, split, **kw):
        acc, n = measured(path, split, **kw)
        return (acc - 0.05, n) if str(path).endswith(".int8.onnx") else (acc, n)

    monkeypatch.setattr(quantize, "onnx_accuracy", five_points_lower_for_int8)
    _, run, _ = deployed
    out = tmp_path / "out" / "m.onnx"
    out.parent.mkdir()
    assert main(["export", str(run), "-o", str(out), "--quantize", "int8", "--max-accuracy-drop", "1"]) == 2
    err = capsys.readouterr().err
    assert "int8 export refused" in err and "drop 5.00 points (limit 1)" in err
    assert list(out.parent.iterdir()) == []  # neither graph, no staging folder
