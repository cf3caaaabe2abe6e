"""widen_narrow_broadcasts: a trailing-1 operand broadcast against (..., d) is widened by MatMul(w, ones);
results stay bit-identical, scalars and equal shapes are left alone, constants are widened in place."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from exporters.broadcast_ops import widen_narrow_broadcasts
from exporters.runtime import make_session

pytest.importorskip("onnxruntime")
H, D = 2, 8


def graph_with_broadcasts(path):
    """x (B, H, T, D), w (T, 1), den (B, H, T, 1) -> x * w, x / den, c - that (c a constant (1, H, 1, 1)),
    x + 2 (scalar: untouched), x * x (equal shapes: untouched)."""
    f = lambda n, s: helper.make_tensor_value_info(n, TensorProto.FLOAT, s)  # noqa: E731
    nodes = [helper.make_node("Mul", ["x", "w"], ["a"]), helper.make_node("Div", ["a", "den"], ["b"]),
             helper.make_node("Sub", ["c", "b"], ["d"]), helper.make_node("Add", ["d", "two"], ["e"]),
             helper.make_node("Mul", ["e", "e"], ["y"])]
    inits = [numpy_helper.from_array(np.linspace(-1, 1, H).astype(np.float32).reshape(1, H, 1, 1), "c"),
             numpy_helper.from_array(np.array([2.0], np.float32), "two")]
    graph = helper.make_graph(nodes, "g", [f("x", ["B", H, "T", D]), f("w", ["T", 1]), f("den", ["B", H, "T", 1])],
                              [f("y", ["B", H, "T", D])], inits,
                              value_info=[f("a", ["B", H, "T", D]), f("b", ["B", H, "T", D]), f("d", ["B", H, "T", D]),
                                          f("e", ["B", H, "T", D])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    return path


def test_trailing_one_operands_are_widened_and_results_are_identical(tmp_path):
    src = graph_with_broadcasts(tmp_path / "g.onnx")
    model = onnx.load(str(src))
    assert widen_narrow_broadcasts(model) == 3               # w, den, the constant c; not the scalar, not e * e
    kinds = [n.op_type for n in model.graph.node]
    assert kinds.count("MatMul") == 2                         # w and den; c was broadcast as a constant
    c = next(i for i in model.graph.initializer if i.name.startswith("c__wide"))
    assert list(c.dims) == [1, H, 1, D]
    dst = tmp_path / "w.onnx"
    onnx.save(model, str(dst))
    rng = np.random.default_rng(0)
    feeds = {"x": rng.standard_normal((3, H, 5, D)).astype(np.float32), "w": rng.standard_normal((5, 1)).astype(np.float32),
             "den": rng.uniform(0.5, 2, (3, H, 5, 1)).astype(np.float32)}
    expect, got = make_session(src).run(None, feeds)[0], make_session(dst).run(None, feeds)[0]
    assert np.array_equal(got, expect)


def test_nothing_to_widen_leaves_the_graph_as_it_was(tmp_path):
    f = lambda n, s: helper.make_tensor_value_info(n, TensorProto.FLOAT, s)  # noqa: E731
    graph = helper.make_graph([helper.make_node("Mul", ["x", "s"], ["y"])], "g", [f("x", ["T", D]), f("s", [1, 1])],
                              [f("y", ["T", D])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    before = model.SerializeToString()
    assert widen_narrow_broadcasts(model) == 0 and model.SerializeToString() == before
