"""exporters.fast_ops and the session settings: faster ONNX forms keep the numbers, ORT's slow fusions stay off."""
from __future__ import annotations

import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from exporters.fast_ops import cancel_offsets, export_translations, fast_graph_pass
from exporters.parity import export_verified
from exporters.runtime import DISABLED_OPTIMIZERS, make_session

D = 16


def ops(path) -> list[str]:
    return [n.op_type for n in onnx.load(str(path)).graph.node]


class FeatureMap(torch.nn.Module):
    """Linear attention's feature map elu(x) + 1, read by another op (as in the layer)."""

    def forward(self, x):
        return (torch.nn.functional.elu(x) + 1.0) * x                    # (B, T, D)


class Ffn(torch.nn.Module):
    def __init__(self, approximate: str):
        super().__init__()
        self.up, self.approximate = torch.nn.Linear(D, 2 * D), approximate

    def forward(self, x):
        return torch.nn.functional.gelu(self.up(x), approximate=self.approximate)  # (B, T, 2D)


def export(module, path, **kwargs):
    x = torch.linspace(-12, 12, 2 * 5 * D).reshape(2, 5, D)              # both signs, saturation
    return export_verified(module, (x,), path, [(x,), (x[:1, :3] * 0.1,)], atol=1e-5, input_names=["x"],
                           dynamic_axes={"x": {0: "batch", 1: "seq"}}, fallback=False, **kwargs)


def test_elu_plus_one_loses_its_minus_one_plus_one(tmp_path):
    """elu(x) + 1 exports as Relu(x) + Exp(Min(x, 0)): the pass removes the Sub/Add of the same 1,
    the unread constant with them, and the graph still matches eager."""
    path, report = export(FeatureMap(), tmp_path / "elu.onnx", translations=export_translations(contrib_ops=False),
                          graph_pass=fast_graph_pass())
    assert report.ok, report.summary()
    assert "Sub" not in ops(path) and ops(path).count("Add") == 1 and "Exp" in ops(path) and "Mul" in ops(path)
    model = onnx.load(str(path))
    read = {name for node in model.graph.node for name in node.input}
    assert all(init.name in read for init in model.graph.initializer)


def test_cancel_offsets_keeps_pairs_that_differ_or_are_read_elsewhere():
    """Only Add(Sub(x, c), c) with the same c and no other reader of the Sub is removed."""
    const = lambda name, v: numpy_helper.from_array(__import__("numpy").array(v, dtype="float32"), name)  # noqa: E731
    nodes = [helper.make_node("Sub", ["x", "one"], ["a"]), helper.make_node("Add", ["a", "two"], ["b"]),   # c differs
             helper.make_node("Sub", ["b", "one"], ["c"]), helper.make_node("Add", ["c", "one"], ["d"]),  # read twice
             helper.make_node("Mul", ["c", "d"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
                              [const("one", 1.0), const("two", 2.0)])
    model = helper.make_model(graph)
    assert cancel_offsets(model) == 0 and len(model.graph.node) == 5


@pytest.mark.parametrize("approximate,contrib,fused", [("none", True, True), ("tanh", True, False),
                                                       ("none", False, False)])
def test_gelu_is_one_contrib_node_when_exact(approximate, contrib, fused, tmp_path):
    """Exact GELU becomes com.microsoft.Gelu (ORT folds the bias Add into BiasGelu); the tanh form
    and standard-ops exports keep torchlib's; all match eager."""
    path, report = export(Ffn(approximate), tmp_path / "ffn.onnx", translations=export_translations(contrib))
    assert report.ok, report.summary()
    assert ("Gelu" in ops(path)) == fused and ("Erf" in ops(path) or "Tanh" in ops(path)) != fused
    if fused:
        optimized = tmp_path / "ffn.opt.onnx"
        make_session(path, optimized_model_path=optimized)
        assert "BiasGelu" in ops(optimized)


def test_sessions_keep_layer_norm_unfused(tmp_path):
    """SkipLayerNormFusion is off (its kernel is ~5x slower than Add + LayerNormalization at hidden
    64): a residual Add feeding a LayerNormalization stays as it is."""
    assert "SkipLayerNormFusion" in DISABLED_OPTIMIZERS
    f = lambda n: numpy_helper.from_array(__import__("numpy").ones(n, dtype="float32"))  # noqa: E731
    scale, bias = f(D), f(D)
    scale.name, bias.name = "scale", "bias"
    nodes = [helper.make_node("Add", ["x", "r"], ["s"]),
             helper.make_node("LayerNormalization", ["s", "scale", "bias"], ["y"], axis=-1)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 4, D]) for n in "xr"],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, D])], [scale, bias])
    path, optimized = tmp_path / "ln.onnx", tmp_path / "ln.opt.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    make_session(path, optimized_model_path=optimized)
    assert "SkipLayerNormalization" not in ops(optimized) and "LayerNormalization" in ops(optimized)


def test_int8_quantizes_activation_matmuls_only_when_asked(tmp_path):
    """Default int8 quantizes MatMuls with constant weights; activations=True also x @ y of two
    activations (a DynamicQuantizeLinear on each input), and both still compute x @ W and x @ y."""
    import numpy as np

    from exporters.quantize import quantize_int8

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((D, D)).astype("float32"), "w")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["xw"]), helper.make_node("Transpose", ["x"], ["xt"], perm=[0, 2, 1]),
             helper.make_node("MatMul", ["xt", "xw"], ["y"])]                   # (B, D, D): activations only
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", "T", D])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", D, D])], [w])
    path = tmp_path / "mm.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    x = rng.standard_normal((2, 32, D)).astype("float32")
    expect = make_session(path).run(None, {"x": x})[0]
    for activations, integer_matmuls in ((False, 1), (True, 2)):
        q = quantize_int8(path, tmp_path / f"q{activations}.onnx", activations=activations)
        kinds = ops(q)
        assert kinds.count("MatMulInteger") + kinds.count("DynamicQuantizeMatMul") == integer_matmuls, kinds
        got = make_session(q).run(None, {"x": x})[0]
        assert np.abs(got - expect).max() <= 0.05 * np.abs(expect).max()      # int8 error, not a wrong graph
