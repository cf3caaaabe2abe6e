"""Block-wise processing of long sequences (`nasgraph.attention._by_blocks`): every type with a
`block` option gives the same outputs, gradients and decoding state by blocks as in one pass, and its
ONNX export (always by blocks: one Scan over blocks) keeps a dynamic batch and length.

Small sizes (block 16, chunk 4, window 4) so that T=37 spans three blocks, the last one padded.
"""
from __future__ import annotations

import onnx
import pytest
import torch

import nasgraph.attention as attention
from exporters.onnx_export import batch_seq_axes, export_onnx
from exporters.runtime import make_session
from nasgraph.attention._by_blocks import block_layout

D, H = 32, 4
BLOCKED = [n for n in attention.names() if "block" in attention.get(n).Config.model_fields
           and attention.get(n).caps.causal and n not in ("bigbird", "sparse")]
SMALL = {"sliding_window": {"window": 4}}


def build(name: str, block: int, **options) -> attention.Attention:
    torch.manual_seed(0)
    options = {**({"chunk": 4} if "chunk" in attention.get(name).Config.model_fields else {}),
               **SMALL.get(name, {}), **options}
    return attention.build(name, D, H, causal=True, block=block, **options).eval()


def padded(B: int, T: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([T, T - 3, T // 2])[:B]                     # (B,)
    return torch.randn(B, T, D, generator=gen), torch.arange(T)[None] < lengths[:, None]


def assert_session_matches(module: attention.Attention, path) -> None:
    """The exported `path` run by ORT equals `module` on the kept positions at five (B, T), one block or more."""
    sess = make_session(path, threads=1)
    for B, T in [(1, 37), (3, 37), (3, 5), (2, 16), (1, 70)]:           # 5, 16: one block
        x, mask = padded(B, T, seed=T)
        with torch.no_grad():
            want = module(x, mask)
        got = torch.from_numpy(sess.run(None, {"x": x.numpy(), "mask": mask.numpy()})[0])
        torch.testing.assert_close(got[mask], want[mask], rtol=1e-4, atol=1e-4)


def test_the_blockable_types_are_the_linear_causal_ones():
    assert {"linear", "sliding_window", "retention", "gla", "deltanet", "gated_deltanet", "ssd"} <= set(BLOCKED)


@pytest.mark.parametrize("T,block,align,layout", [(37, 16, 4, (3, 16)), (16, 16, 4, (1, 16)),
                                                  (5, 16, 4, (1, 8)), (8192, 1024, 64, (8, 1024)),
                                                  (1025, 1024, 64, (2, 576))])
def test_block_layout_pads_no_more_than_the_alignment_per_block(T, block, align, layout):
    n, Tb = block_layout(T, block, align)
    assert (n, Tb) == layout and Tb % align == 0 and n * Tb >= T and n * Tb - T < n * align


@pytest.mark.parametrize("B,T", [(1, 37), (3, 37), (3, 64)])
@pytest.mark.parametrize("name", BLOCKED)
def test_blocks_equal_one_pass(name, B, T):
    blocked, whole = build(name, 16), build(name, 0)
    x, mask = padded(B, T)
    with torch.no_grad():
        torch.testing.assert_close(blocked(x), whole(x), rtol=1e-5, atol=1e-6)
        got, want = blocked(x, mask), whole(x, mask)
    if attention.get(name).caps.padding_mask:
        torch.testing.assert_close(got[mask], want[mask], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", BLOCKED)
def test_gradients_through_blocks_equal_one_pass(name):
    blocked, whole = build(name, 16), build(name, 0)
    x = padded(2, 37)[0]
    for module in (blocked, whole):
        module(x).square().sum().backward()
    for (key, p), q in zip(blocked.named_parameters(), whole.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-5, msg=key)


@pytest.mark.parametrize("short_conv", [0, 4])
@pytest.mark.parametrize("name", [n for n in BLOCKED if attention.get(n).caps.recurrent])
def test_prefill_state_by_blocks_is_the_one_pass_state(name, short_conv):
    """The decoding state after a prefill (the recurrent state and the short convolution's last
    inputs, not the last block's padding) is the same, so decoding continues exactly."""
    blocked, whole = build(name, 16, short_conv=short_conv), build(name, 0, short_conv=short_conv)
    x = padded(2, 37)[0]
    with torch.no_grad():
        (h1, s1), (h2, s2) = blocked.prefill(x), whole.prefill(x)
    torch.testing.assert_close(h1, h2, rtol=1e-5, atol=1e-6)
    for a, b in zip(s1, s2, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def scan_bodies(graph: onnx.GraphProto) -> list[onnx.GraphProto]:
    return [a.g for n in graph.node if n.op_type == "Scan" for a in n.attribute if a.name == "body"]


@pytest.mark.parametrize("name", BLOCKED)
def test_export_runs_by_blocks_with_dynamic_batch_and_length(name, tmp_path):
    module = build(name, 16)
    x, mask = padded(2, 50)
    path = export_onnx(module, (x, mask), tmp_path / f"{name}.onnx", input_names=["x", "mask"],
                       output_names=["y"], dynamic_axes=batch_seq_axes("x", "mask"), fallback=False)
    graph = onnx.load(str(path)).graph
    dims = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in [*graph.input, *graph.output]}
    assert dims["x"][:2] == ["batch", "seq"] and dims["y"][0] == "batch", dims
    bodies = scan_bodies(graph)
    assert any(n.op_type in ("MatMul", "Gemm") for body in bodies for n in body.node), \
        "the projections are not inside a Scan over blocks"
    assert_session_matches(module, path)


def _ops_between(graph: onnx.GraphProto, source: str, sink: onnx.NodeProto) -> set[str]:
    """Op types of the top-level nodes on some path from the value `source` to the node `sink` that
    carries its data (not only its shape)."""
    producer = {out: n for n in graph.node for out in n.output}
    memo: dict[str, bool] = {}

    def reaches(value: str) -> bool:                                   # value depends on source's data
        if value not in memo:
            node = producer.get(value)
            memo[value] = value == source or (node is not None and node.op_type != "Shape"
                                              and any(reaches(i) for i in node.input))
        return memo[value]

    ops, stack = set(), [i for i in sink.input if reaches(i)]
    while stack:
        node = producer.get(stack.pop())
        if node is not None:
            ops.add(node.op_type)
            stack += [i for i in node.input if reaches(i)]
    return ops


@pytest.mark.parametrize("name", ["retention", "linear"])
def test_export_gathers_blocks_in_one_pass_over_the_sequence(name, tmp_path):
    """x reaches the Scan over blocks and its outputs reach y by gathers (one pass over the whole
    sequence each), not pad + transpose and transpose + slice (two each)."""
    path = export_onnx(build(name, 16), padded(2, 50), tmp_path / "m.onnx", input_names=["x", "mask"],
                       output_names=["y"], dynamic_axes=batch_seq_axes("x", "mask"), fallback=False)
    graph = onnx.load(str(path)).graph
    scan = next(n for n in graph.node if n.op_type == "Scan")
    out = next(n for n in graph.node if "y" in n.output)
    into = _ops_between(graph, "x", scan)
    assert "Gather" in into and not into & {"Pad", "Transpose", "Slice"}, into
    after = _ops_between(graph, scan.output[-1], out) | {out.op_type}
    assert "Gather" in after and not after & {"Transpose", "Slice"}, after
