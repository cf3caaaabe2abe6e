"""int8 schemes of `nasgraph export --quantize`: each one quantizes a tiny token model's linear layers and
still computes what the fp32 graph computes (within int8 error); bad names and a missing train split
are refused with the valid choices."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from exporters.errors import ExportError
from exporters.quantize import quantize_checked
from exporters.quantize_schemes import SCHEMES, quantize_with, scheme
from exporters.runtime import make_session
from nasgraph.tasks.base import Split

pytest.importorskip("onnxruntime")
V, D, C = 11, 16, 3                                   # vocab, width, classes

# what each scheme leaves in the graph (ONNX Runtime's quantization ops), beside fp32 MatMuls
EXPECTED_OPS = {"int8": {"DynamicQuantizeLinear", "MatMulInteger"},
                "int8-per-channel": {"DynamicQuantizeLinear", "MatMulInteger"},
                "int8-static": {"QuantizeLinear", "QLinearMatMul", "DequantizeLinear"},
                "int8-attention": {"DynamicQuantizeLinear", "MatMulInteger"}}


def token_model(path, seed: int = 0):
    """tokens (B, T) -> logits (B, C): embedding, a linear layer + Relu, x^T x (two activations), mean
    pooling, a linear head; weights with unequal column ranges (where per-channel scales matter)."""
    rng = np.random.default_rng(seed)
    init = lambda name, a: numpy_helper.from_array(np.asarray(a, dtype=np.float32), name)  # noqa: E731
    w1 = rng.standard_normal((D, D)) * np.linspace(0.05, 2.0, D)                 # (D, D), columns scaled
    nodes = [helper.make_node("Gather", ["emb", "tokens"], ["x"]),                # (B, T, D)
             helper.make_node("MatMul", ["x", "w1"], ["h0"]), helper.make_node("Add", ["h0", "b1"], ["h1"]),
             helper.make_node("Relu", ["h1"], ["h"]),                             # (B, T, D)
             helper.make_node("Transpose", ["h"], ["ht"], perm=[0, 2, 1]),        # (B, D, T)
             helper.make_node("MatMul", ["ht", "h"], ["g"]),                      # (B, D, D)
             helper.make_node("ReduceMean", ["g", "axis"], ["p"], keepdims=0),    # (B, D)
             helper.make_node("MatMul", ["p", "w2"], ["logits"])]                 # (B, C)
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("tokens", TensorProto.INT64, ["B", "T"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["B", C])],
        [init("emb", rng.standard_normal((V, D))), init("w1", w1), init("b1", rng.standard_normal(D) * 0.1),
         init("w2", rng.standard_normal((D, C))), numpy_helper.from_array(np.array([1], np.int64), "axis")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    return path


def rows(n: int, seed: int) -> Split:
    rng = np.random.default_rng(seed)
    ids = [rng.integers(0, V, int(rng.integers(4, 10))).tolist() for _ in range(n)]
    return Split(ids, [0] * n)


def op_types(path) -> set[str]:
    return {n.op_type for n in onnx.load(str(path)).graph.node}


@pytest.mark.parametrize("name", list(SCHEMES))
def test_scheme_quantizes_and_keeps_the_function(name, tmp_path):
    src = token_model(tmp_path / "m.onnx")
    dst = quantize_with(name, src, tmp_path / "q.onnx", calibration=rows(32, 1))
    session = make_session(dst)
    assert EXPECTED_OPS[name] <= op_types(dst), op_types(dst)
    fp32 = make_session(src)
    for row in rows(8, 2).ids:
        tokens = np.array([row], np.int64)                                        # (1, T)
        expect, got = fp32.run(None, {"tokens": tokens})[0], session.run(None, {"tokens": tokens})[0]
        assert np.abs(got - expect).max() <= 0.1 * np.abs(expect).max() + 1e-3, (name, got, expect)
    weights = {i.name: i.data_type for i in onnx.load(str(dst)).graph.initializer}
    assert {n for n, t in weights.items() if t == TensorProto.INT8 and n.startswith("w")} >= {"w1_quantized", "w2_quantized"}
    assert "w1" not in weights and "w2" not in weights                           # no fp32 copy left


def test_only_int8_attention_quantizes_activation_products(tmp_path):
    src = token_model(tmp_path / "m.onnx")
    integer = {}
    for name in SCHEMES:
        q = quantize_with(name, src, tmp_path / f"{name}.onnx", calibration=rows(16, 1))
        kinds = [n.op_type for n in onnx.load(str(q)).graph.node]
        integer[name] = sum(k in ("MatMulInteger", "QLinearMatMul", "DynamicQuantizeMatMul") for k in kinds)
    assert integer == {"int8": 2, "int8-per-channel": 2, "int8-static": 2, "int8-attention": 3}


def test_per_channel_schemes_store_one_weight_scale_per_column(tmp_path):
    src = token_model(tmp_path / "m.onnx")
    for name, per_column in (("int8", False), ("int8-per-channel", True), ("int8-static", True)):
        model = onnx.load(str(quantize_with(name, src, tmp_path / f"{name}.onnx", calibration=rows(16, 1))))
        scales = [numpy_helper.to_array(i) for i in model.graph.initializer if i.name.startswith("w1") and "scale" in i.name]
        assert scales and all((s.size == D) == per_column for s in scales), (name, [s.shape for s in scales])


def test_unknown_scheme_lists_the_valid_ones(tmp_path):
    with pytest.raises(ExportError, match="unknown quantization 'int4'; valid: int8, int8-per-channel, int8-static"):
        scheme("int4")


def test_static_without_a_train_split_is_refused_before_anything_is_written(tmp_path):
    src = token_model(tmp_path / "m.onnx")
    with pytest.raises(ExportError, match="train split.*valid without one: int8, int8-per-channel, int8-attention"):
        quantize_checked([src], rows(8, 3), "test", max_drop=1.0, mode="int8-static", calibration=Split([], []))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_checked_static_export_records_its_scheme_and_replaces_the_file(tmp_path):
    src = token_model(tmp_path / "m.onnx")
    test = Split(rows(64, 4).ids, [0] * 64)
    result = quantize_checked([src], test, "test", max_drop=100.0, mode="int8-static", calibration=rows(32, 5))
    assert result.mode == "int8-static" and "quantize_static" in result.method and "train rows" in result.method
    assert "QLinearMatMul" in op_types(src)                                      # the int8 graph took its place
    assert result.summary().startswith("int8-static: test accuracy")


@pytest.mark.slow
def test_cli_exports_int8_static_calibrated_on_the_train_split(tmp_path, capsys):
    """`nasgraph export --quantize int8-static` on a trained tiny run: both graphs are int8 (QLinearMatMul),
    the metadata names the scheme, and the int8 graphs still agree with each other; a bad scheme name
    exits 2 naming the valid ones."""
    import json
    import textwrap

    import onnxruntime as ort

    from exporters.model_export import unpadded_path
    from exporters.runtime import read_metadata
    from nasgraph.cli import main

    spec = tmp_path / "derived.yaml"
    spec.write_text(textwrap.dedent("""
        name: tiny-int8
        task: {kind: tiny, max_len: 12, n_train: 256, n_val: 64, n_test: 64}
        model: {d_model: 16, n_heads: 2, n_layers: 1, ffn: {mult: 2}, attention: softmax}
        train: {steps: 3, batch_size: 16, eval_every: 3, checkpoint_every: 3}
        """))
    run, out = tmp_path / "run", tmp_path / "int8.onnx"
    assert main(["train", str(spec), "--out", str(run), "--no-progress"]) == 0
    with pytest.raises(SystemExit) as bad:
        main(["export", str(run), "-o", str(out), "--quantize", "int4"])
    assert bad.value.code == 2
    assert "invalid choice: 'int4'" in capsys.readouterr().err and not out.exists()
    assert main(["export", str(run), "-o", str(out), "--quantize", "int8-static", "--max-accuracy-drop", "100",
                 "--no-progress"]) == 0
    assert "int8-static: test accuracy" in capsys.readouterr().out
    tokens = np.array([[1, 2, 3, 4, 5, 6]], np.int64)                           # (1, T), no padding
    outputs = []
    for graph in (out, unpadded_path(out)):
        q = json.loads(read_metadata(graph)["nasgraph.quantization"])
        assert q["mode"] == "int8-static" and "calibrated" in q["method"] and q["examples"] == 64
        assert "QLinearMatMul" in op_types(graph)
        outputs.append(ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"]).run(None, {"tokens": tokens})[0])
    np.testing.assert_allclose(outputs[0], outputs[1], atol=1e-2)


def normalised_model(path):
    """tokens -> logits through h / sum(exp(h)) (a (B, T, 1) normaliser, as the linear family's), with
    the export's broadcast pass applied: the normaliser is widened by MatMul(den, ones(1, D))."""
    from exporters.broadcast_ops import widen_narrow_broadcasts

    rng = np.random.default_rng(3)
    init = lambda name, a: numpy_helper.from_array(np.asarray(a, dtype=np.float32), name)  # noqa: E731
    nodes = [helper.make_node("Gather", ["emb", "tokens"], ["x"]),                # (B, T, D)
             helper.make_node("MatMul", ["x", "w1"], ["h"]),                      # (B, T, D)
             helper.make_node("Exp", ["h"], ["e"]),
             helper.make_node("ReduceSum", ["e", "last"], ["den"], keepdims=1),   # (B, T, 1)
             helper.make_node("Div", ["h", "den"], ["n"]),                        # (B, T, D)
             helper.make_node("ReduceMean", ["n", "axis"], ["p"], keepdims=0),    # (B, D)
             helper.make_node("MatMul", ["p", "w2"], ["logits"])]                 # (B, C)
    graph = helper.make_graph(
        nodes, "normalised", [helper.make_tensor_value_info("tokens", TensorProto.INT64, ["B", "T"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["B", C])],
        [init("emb", rng.standard_normal((V, D))), init("w1", rng.standard_normal((D, D)) * 2),
         init("w2", rng.standard_normal((D, C))), numpy_helper.from_array(np.array([2], np.int64), "last"),
         numpy_helper.from_array(np.array([1], np.int64), "axis")])
    model = onnx.shape_inference.infer_shapes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]))
    assert widen_narrow_broadcasts(model) == 1
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("name", list(SCHEMES))
def test_no_scheme_quantizes_the_broadcast_widening(name, tmp_path):
    """The widening MatMul (den @ ones) is an exact copy, not a linear layer: every scheme leaves it fp32
    (quantized, it rounded ListOps linear's normaliser and cost 14.6 test points at d_model 256)."""
    from exporters.broadcast_ops import widening_matmuls

    src = normalised_model(tmp_path / "m.onnx")
    widening = widening_matmuls(onnx.load(str(src)))
    assert len(widening) == 1
    q = quantize_with(name, src, tmp_path / "q.onnx", calibration=rows(16, 1))
    assert widening_matmuls(onnx.load(str(q))) == widening
    assert EXPECTED_OPS[name] <= op_types(q)                                      # the linear layers still are


@pytest.mark.parametrize("option, value, match", [
    ("--atol", "nan", "--atol must be a finite number > 0"),
    ("--max-accuracy-drop", "nan", "--max-accuracy-drop must be a finite"),
    ("--max-accuracy-drop", "inf", "--max-accuracy-drop must be a finite")])
def test_export_refuses_nan_tolerances_before_exporting(option, value, match, tmp_path, capsys):
    """--max-accuracy-drop nan accepted any int8 drop (nan compares false); --atol nan reported a parity mismatch."""
    from nasgraph.cli import main

    out = tmp_path / "x.onnx"
    assert main(["export", str(tmp_path / "no-run"), "-o", str(out), "--quantize", "int8", option, value]) == 2
    err = capsys.readouterr().err
    assert match in err and len(err.strip().splitlines()) == 1 and not out.exists(), err
