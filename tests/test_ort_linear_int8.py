"""int8 exports of models holding com.microsoft.LinearAttention: dynamic quantization leaves the
contrib node as it is (only MatMuls with constant weights are quantized), the int8 graph runs and
stays near the fp32 one, and `nasgraph export --quantize int8` of a trained causal model lands."""
from __future__ import annotations

import numpy as np
import onnx
import pytest

from exporters.linear_attention import ort_has_linear_attention
from exporters.quantize_schemes import quantize_with
from exporters.runtime import make_session
from tests.test_attention_blocks import build, padded
from tests.test_ort_linear_attention import all_nodes, export

pytestmark = pytest.mark.skipif(not ort_has_linear_attention(), reason="onnxruntime has no LinearAttention kernel")


def ops(path) -> list[str]:
    return [n.op_type for n in all_nodes(onnx.load(str(path)).graph)]


@pytest.mark.parametrize("scheme", ["int8", "int8-per-channel", "int8-attention"])
def test_dynamic_quantization_keeps_the_node_and_the_function(scheme, tmp_path):
    path = export(build("gla", 16), tmp_path / "m.onnx", contrib=True)
    q = quantize_with(scheme, path, tmp_path / "q.onnx")
    assert ops(q).count("LinearAttention") == 1 and "MatMulInteger" in ops(q)
    x, mask = padded(2, 37)
    feed = {"x": x.numpy(), "mask": mask.numpy()}
    want, got = (make_session(p, threads=1).run(None, feed)[0][mask.numpy()] for p in (path, q))
    assert np.abs(got - want).max() < 0.05 * np.abs(want).max()


@pytest.mark.slow
def test_cli_exports_an_int8_model_holding_the_node(tmp_path, capsys):
    """`nasgraph export --quantize int8` of a trained causal LM with a gated_deltanet layer: both graphs
    and the decode graphs hold LinearAttention, the main ones are int8."""
    import textwrap

    from exporters.decode_export import decode_names
    from exporters.model_export import unpadded_path
    from nasgraph.cli import main

    spec = tmp_path / "derived.yaml"
    spec.write_text(textwrap.dedent("""
        name: tiny-la-int8
        task: {kind: mqar, max_len: 24, n_pairs: 4, n_keys: 8, n_values: 8, n_train: 64, n_val: 16, n_test: 16}
        model: {d_model: 16, n_heads: 2, n_layers: 1, ffn: {mult: 2}, attention: gated_deltanet}
        train: {steps: 3, batch_size: 16, eval_every: 3, checkpoint_every: 3}
        """))
    run, out = tmp_path / "run", tmp_path / "la.onnx"
    assert main(["train", str(spec), "--out", str(run), "--no-progress"]) == 0
    assert main(["export", str(run), "-o", str(out), "--quantize", "int8", "--max-accuracy-drop", "100",
                 "--no-progress"]) == 0
    assert "int8: test accuracy" in capsys.readouterr().out
    for graph in (out, unpadded_path(out)):
        assert "LinearAttention" in ops(graph) and "MatMulInteger" in ops(graph), graph
    for graph in decode_names(out):
        assert "LinearAttention" in ops(graph), graph
