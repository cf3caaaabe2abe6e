"""deltanet and gated_deltanet export their recurrence as one com.microsoft.LinearAttention node when the
installed onnxruntime has the kernel (exporters/linear_attention.py), and the exported model matches
PyTorch with a dynamic batch and length; standard-ops exports keep the chunked form.

Small sizes (block 16, chunk 4) as in test_attention_blocks.py, so T=37 spans three blocks.
"""
from __future__ import annotations

import onnx
import pytest
import torch

from exporters.fast_ops import export_translations
from exporters.linear_attention import ort_has_linear_attention
from exporters.onnx_export import batch_seq_axes, export_onnx
from nasgraph.attention._ort_linear import delta_recurrence
from nasgraph.attention._recurrent import delta_step
from tests.test_attention_blocks import assert_session_matches, build, padded

needs_op = pytest.mark.skipif(not ort_has_linear_attention(), reason="onnxruntime has no LinearAttention kernel")
NAMES = ["deltanet", "gated_deltanet"]


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


@pytest.mark.parametrize("gated", [False, True])
def test_the_op_eager_body_is_the_token_recurrence(gated):
    gen = torch.Generator().manual_seed(0)
    B, T, H, d = 2, 11, 3, 5
    q, v = (torch.randn(B, T, H * d, generator=gen) for _ in range(2))
    k = torch.nn.functional.normalize(torch.randn(B, T, H, d, generator=gen), dim=-1).flatten(2)
    g, beta = -torch.rand(B, T, H, generator=gen), torch.rand(B, T, H, generator=gen)
    S0 = torch.randn(B, H, d, d, generator=gen)
    o, S = delta_recurrence(q, k, v, S0, g, beta, H, gated)
    heads = [t.unflatten(-1, (H, d)) for t in (q, k, v)]             # (B, T, H, d)
    want, state = [], S0
    for t in range(T):
        o_t, state = delta_step(state, *(h[:, t] for h in heads), beta[:, t, :, None],
                                g[:, t, :, None] if gated else None)
        want.append(o_t.flatten(1))
    torch.testing.assert_close(o, torch.stack(want, 1), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(S, state, rtol=1e-4, atol=1e-5)


@needs_op
@pytest.mark.parametrize("short_conv", [0, 4])
@pytest.mark.parametrize("name", NAMES)
def test_export_uses_linear_attention_and_matches(name, short_conv, tmp_path):
    module = build(name, 16, short_conv=short_conv)
    path = export(module, tmp_path / f"{name}.onnx", contrib=True)
    graph = onnx.load(str(path)).graph
    kinds = [(n.domain, n.op_type) for n in all_nodes(graph)]
    assert ("com.microsoft", "LinearAttention") in kinds
    dims = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim] for v in graph.input}
    assert dims["x"][:2] == ["batch", "seq"], dims
    assert_session_matches(module, path)


def test_standard_ops_export_keeps_the_chunked_form(tmp_path):
    path = export(build("gated_deltanet", 16), tmp_path / "m.onnx", contrib=False)
    assert all(n.op_type != "LinearAttention" for n in all_nodes(onnx.load(str(path)).graph))
