"""benchmarks/deploy_tiled_attention.py's attention graphs compute softmax attention (parity with torch's
SDPA, partial last block included), and the deploy benchmarks' spec overrides reach the derived models."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import onnx  # noqa: E402

from benchmarks import deploy_tiled_attention as paths  # noqa: E402
from exporters.runtime import make_session  # noqa: E402

H, DH, T = 2, 8, 40


@pytest.mark.parametrize("build", [
    lambda: paths.mha(H, DH), lambda: paths.mha(H, DH, pad=8),
    lambda: paths.tiled(H, DH, T, 16), lambda: paths.tiled(H, DH, T, T), lambda: paths.attention23(H, DH),
    lambda: paths.gqa(H, DH),
], ids=["mha", "mha-padqk", "tiled-partial-block", "tiled-one-block", "attention23", "gqa-non-causal"])
def test_every_path_matches_sdpa(build, tmp_path):
    rng = np.random.default_rng(0)
    feeds = {n: rng.standard_normal((1, T, H * DH), dtype=np.float32) for n in "qkv"}
    path = tmp_path / "a.onnx"
    onnx.save(build(), str(path))
    out = make_session(path, threads=1).run(None, feeds)[0]
    ref = paths.sdpa(feeds, H, DH)().numpy()
    assert out.shape == (1, T, H * DH)
    np.testing.assert_allclose(out, ref, atol=1e-5)


def test_tiled_graph_splits_queries_into_blocks():
    model = paths.tiled(H, DH, T, 16)
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("Softmax") == 3 and ops.count("MatMul") == 6   # blocks of 16, 16 and 8 rows


def test_spec_overrides_reach_every_derived_model():
    from benchmarks.deploy_latency import derived_models

    seen = {label: (doc.spec.model.d_model, model.ctx.d_model)
            for label, doc, model in derived_models("listops_homogeneous", 64, ("model.d_model=32",))}
    assert set(seen) == {"softmax", "linear", "local(window=16)"}
    assert set(seen.values()) == {(32, 32)}


def test_runs_table_lists_every_run_and_counts_points_met_in_all_and_any():
    from benchmarks.deploy_latency_report import runs_table

    def row(ratio, T=2048, threads=1):
        return {"spec": "s", "attention": "softmax", "T": T, "threads": threads, "ratio": 1.0,
                "ratio_cpu": ratio if threads == 1 else None, "ratio_proc": ratio}

    lines = runs_table([[row(0.83), row(0.70, threads=2)], [row(0.79), row(0.75, threads=2)]])
    assert "| s | softmax | 0.83, 0.79 / 0.70, 0.75 |" in lines
    assert any(l.startswith("- 1 thread(s), T=2048: 0 of 1 met in every run, 1 in at least one") for l in lines)
    assert any(l.startswith("- 2 thread(s), T=2048: 1 of 1 met in every run, 1 in at least one") for l in lines)


def test_gap_table_groups_ops_of_both_runtimes_and_scales_to_unprofiled_time():
    from benchmarks.deploy_latency_gaps import gaps, markdown, op_class

    assert [op_class(o) for o in ("MultiHeadAttention", "aten::_scaled_dot_product_flash_attention_for_cpu",
                                  "aten::addmm", "FusedMatMul", "Add", "aten::add", "BiasGelu", "aten::gelu",
                                  "LayerNormalization", "aten::native_layer_norm", "Transpose", "aten::copy_",
                                  "SomethingNew")] == \
        ["attention", "attention", "matmul", "matmul", "elementwise", "elementwise", "activation", "activation",
         "norm", "norm", "layout", "layout", "other"]
    row = {"spec": "s", "attention": "softmax", "T": 2048, "ratio_cpu": 0.9, "ort_cpu_ms": 9.0, "eager_cpu_ms": 10.0,
           "ort_ops": {"MultiHeadAttention": 12.0, "MatMul": 4.0, "Add": 2.0},       # profiled: 18 ms -> 9 ms
           "eager_ops": {"aten::_scaled_dot_product_flash_attention_for_cpu": 8.0, "aten::addmm": 2.0}}
    g = gaps(row)
    assert g["ort"]["attention"] == 6.0 and g["ort"]["matmul"] == 2.0 and g["ort"]["elementwise"] == 1.0
    assert g["eager"]["attention"] == 8.0 and g["eager"]["matmul"] == 2.0
    assert abs(g["shed_ms"] - 1.0) < 1e-9                       # 9 - 0.8 * 10
    assert g["attention_floor"] == 0.6 and abs(g["matmul_free"] - 7 / 9) < 1e-9
    assert g["at_parity"] == 0.9               # attention+matmul+elementwise: ORT 9 < eager 10, nothing else
    faster_kernels = gaps({**row, "ort_ops": {"MultiHeadAttention": 6.0, "Transpose": 3.0}, "ort_cpu_ms": 9.0,
                           "eager_ops": {"aten::_scaled_dot_product_flash_attention_for_cpu": 8.0, "aten::copy_": 1.0},
                           "eager_cpu_ms": 9.0})
    assert abs(faster_kernels["at_parity"] - 7 / 9) < 1e-9  # ORT's attention 6 + eager's layout 1
    table = markdown([g])
    assert "| s | softmax | 2048 | 0.90 | 6.00 / 8.00 | 2.00 / 2.00 | 1.00 / 0.00 |" in table
    assert "attention -2.00" in table and "elementwise +1.00" in table
