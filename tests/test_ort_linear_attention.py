"""The causal recurrent types (retention, gla, ssd, deltanet, gated_deltanet) and the causal feature-map
types (linear, cosformer) export their recurrence as one com.microsoft.LinearAttention node when the
installed onnxruntime has the kernel (exporters/linear_attention.py), and the exported model matches
PyTorch with a dynamic batch and length; standard-ops exports keep the chunked form.

Small sizes (block 16, chunk 4) as in test_attention_blocks.py, so T=37 spans three blocks.
"""
from __future__ import annotations

import onnx
import pytest
import torch

import nasgraph.attention as attention
from exporters.fast_ops import export_translations
from exporters.linear_attention import ort_has_linear_attention
from exporters.onnx_export import batch_seq_axes, export_onnx
from nasgraph.attention._ort_linear import RULES, linear_recurrence
from nasgraph.attention._recurrent import decayed_step, delta_step
from tests.test_attention_blocks import D, H, assert_session_matches, build, padded

needs_op = pytest.mark.skipif(not ort_has_linear_attention(), reason="onnxruntime has no LinearAttention kernel")
RECURRENT = ["retention", "gla", "ssd", "deltanet", "gated_deltanet"]


def all_nodes(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    """The graph's nodes and those of its subgraphs (Scan bodies), recursively."""
    out = []
    for node in graph.node:
        out.append(node)
        for a in node.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                out += all_nodes(a.g)
    return out


def export(module, path, contrib: bool):
    return export_onnx(module, padded(2, 50), path, input_names=["x", "mask"], output_names=["y"],
                       dynamic_axes=batch_seq_axes("x", "mask"), fallback=False,
                       translations=export_translations(contrib_ops=contrib))


@pytest.mark.parametrize("rule,per_dim,shared", [(r, False, False) for r in RULES]
                         + [("gated", True, False), ("gated", False, True)])
def test_the_op_eager_body_is_the_token_recurrence(rule, per_dim, shared):
    gen = torch.Generator().manual_seed(0)
    B, T, h, dk, dv = 2, 11, 3, 5, 4
    has_g, has_beta = RULES[rule]
    hq = 1 if shared else h
    q = torch.randn(B, T, hq, dk, generator=gen)                      # (B, T, Hq, dk)
    k = torch.nn.functional.normalize(torch.randn(B, T, hq, dk, generator=gen), dim=-1)
    v = torch.randn(B, T, h, dv, generator=gen)                       # (B, T, H, dv)
    g = -torch.rand(B, T, h, dk if per_dim else 1, generator=gen) if has_g else None
    beta = torch.rand(B, T, h, generator=gen) if has_beta else None
    S0 = torch.randn(B, h, dk, dv, generator=gen)
    o, S = linear_recurrence(q.flatten(2), k.flatten(2), v.flatten(2), S0, None if g is None else g.flatten(2),
                             beta, rule)
    qh, kh = (t.expand(B, T, h, dk) for t in (q, k))                  # (B, T, H, dk)
    want, state = [], S0
    for t in range(T):
        g_t = None if g is None else g[:, t]                           # (B, H, 1 | dk)
        if has_beta:
            o_t, state = delta_step(state, qh[:, t], kh[:, t], v[:, t], beta[:, t, :, None], g_t)
        else:
            o_t, state = decayed_step(state, qh[:, t], kh[:, t], v[:, t], torch.zeros(B, h, 1) if g_t is None else g_t)
        want.append(o_t.flatten(1))
    torch.testing.assert_close(o, torch.stack(want, 1), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(S, state, rtol=1e-4, atol=1e-5)


def test_the_op_names_the_bad_rule():
    x = torch.zeros(1, 2, 4)
    with pytest.raises(ValueError, match="'gated'.*valid: linear"):
        linear_recurrence(x, x, x, torch.zeros(1, 1, 4, 4), None, None, "gated")


def build_feature_map(name: str, **options) -> attention.Attention:
    torch.manual_seed(0)
    block = {"block": 16} if "block" in attention.get(name).Config.model_fields else {}
    return attention.build(name, D, H, causal=True, chunk=4, **block, **options).eval()


SLOW = pytest.mark.slow  # an export and five ORT runs each: ~10-20 s on a busy 2-core machine
CASES = ([pytest.param(n, {}, id=n) for n in RECURRENT + ["linear", "cosformer"]]
         + [pytest.param(n, {"short_conv": 4}, id=f"{n}-short_conv", marks=SLOW) for n in RECURRENT]
         + [pytest.param(n, {"norm": False, "gate": False}, id=f"{n}-no-norm-gate", marks=SLOW)
            for n in ("retention", "gla", "ssd")])


@needs_op
@pytest.mark.parametrize("name,options", CASES)
def test_export_uses_linear_attention_and_matches(name, options, tmp_path):
    module = build(name, 16, **options) if name in RECURRENT else build_feature_map(name, **options)
    path = export(module, tmp_path / f"{name}.onnx", contrib=True)
    graph = onnx.load(str(path)).graph
    kinds = [(n.domain, n.op_type) for n in all_nodes(graph)]
    assert ("com.microsoft", "LinearAttention") in kinds
    assert not any(op == "Scan" for _, op in kinds if name == "cosformer")  # no chunk scan left
    dims = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim] for v in graph.input}
    assert dims["x"][:2] == ["batch", "seq"], dims
    assert_session_matches(module, path)


@pytest.mark.parametrize("name", ["gla", "linear"])
def test_standard_ops_export_keeps_the_chunked_form(name, tmp_path):
    module = build(name, 16) if name in RECURRENT else build_feature_map(name)
    path = export(module, tmp_path / "m.onnx", contrib=False)
    assert all(n.op_type != "LinearAttention" for n in all_nodes(onnx.load(str(path)).graph))
