"""The prefill and step graphs of the causal recurrent types run their recurrence through
com.microsoft.LinearAttention (past state in, present state out) where onnxruntime has the kernel,
and decode as the standard-ops graphs and eager decoding do (export_decode's own parity check, plus
the two exports against each other on fresh inputs)."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from exporters.decode_export import export_decode
from exporters.decode_runtime import OrtDecoder
from exporters.linear_attention import ort_has_linear_attention
from nasgraph import decoding
from tests.test_decode_export import MAX_LEN, model_of, tokens
from tests.test_ort_linear_attention import all_nodes

pytestmark = pytest.mark.skipif(not ort_has_linear_attention(), reason="onnxruntime has no LinearAttention kernel")
LAYERS = ["retention", "gla", "ssd", "deltanet", "gated_deltanet", "linear"]
RECURRENT = 5   # the first five keep their state as the op's; `linear` only prefills through it


def decode_both(root, layers):
    model = model_of(root / "spec.yaml", layers)
    checks = [tokens(3, 9, 1), tokens(1, MAX_LEN, 2)]
    out = {}
    for contrib in (True, False):
        folder = root / str(contrib)
        folder.mkdir()
        (prefill, step), report = export_decode(model, folder / "m.onnx", checks, max_len=MAX_LEN,
                                                example=tokens(2, 5, 3), contrib_ops=contrib)
        assert report.ok, report.summary()
        out[contrib] = (prefill, step, OrtDecoder(folder, threads=1))
    return model, out


def count_op(path) -> int:
    return sum(n.op_type == "LinearAttention" for n in all_nodes(onnx.load(str(path)).graph))


@pytest.mark.slow  # two decode exports of six layers: ~2.5 min
def test_decode_graphs_use_linear_attention_and_match(tmp_path):
    model, out = decode_both(tmp_path, LAYERS)
    prefill, step, fused = out[True]
    assert count_op(prefill) == len(LAYERS) and count_op(step) == RECURRENT
    assert count_op(out[False][0]) == count_op(out[False][1]) == 0
    plain = out[False][2]
    ids = tokens(2, 11, 4)                                                 # prefill 4, then 7 steps
    with torch.no_grad():
        full = model(ids, padded=False).numpy()                            # (B, T, V)
    (lf, sf), (lp, sp) = fused.prefill(ids[:, :4].numpy()), plain.prefill(ids[:, :4].numpy())
    np.testing.assert_allclose(lf, full[:, :4], atol=1e-4)
    np.testing.assert_allclose(lf, lp, atol=1e-4)
    for t in range(4, 11):
        (lf, sf), (lp, sp) = fused.step(ids[:, t:t + 1].numpy(), sf, t), plain.step(ids[:, t:t + 1].numpy(), sp, t)
        np.testing.assert_allclose(lf, full[:, t], atol=1e-4)
        np.testing.assert_allclose(lf, lp, atol=1e-4)
    with torch.no_grad():
        _, eager = decoding.prefill(model, ids)
    for e, ref in zip(fused.state_entries, eager, strict=True):
        np.testing.assert_allclose(sf[e["input"]], ref.numpy(), atol=1e-4, rtol=1e-4, err_msg=e["input"])
