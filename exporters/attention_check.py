"""The attention contract's ONNX check: a type exports (dynamo, opset 18, dynamic batch and sequence,
padding mask) and matches ONNX Runtime within 1e-4 at two other sequence lengths and another batch.

Used by tests/test_attention_onnx.py and `nasgraph check-attention`, next to the torch checks of
nasgraph.attention.contract.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from exporters.onnx_export import batch_seq_axes
from exporters.parity import export_verified
from exporters.runtime import read_metadata
from nasgraph import attention
from nasgraph.attention.contract import D, LONGEST, Check, Skipped, build

EXPORT_SHAPE = (2, 50)                  # (B, T) traced at export
CHECK_SHAPES = [(3, 13), (3, LONGEST)]  # other batch, odd and maximal lengths
ATOL = 1e-4


def padded_inputs(B: int, T: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x: (B, T, D) and a padding mask (B, T) whose rows keep T, T-3, T//2, ... real tokens."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, D, generator=gen)                            # (B, T, D)
    lengths = torch.tensor([T, T - 3, T // 2, T - 1][:B]).clamp(min=1)  # (B,)
    mask = torch.arange(T)[None, :] < lengths[:, None]                 # (B, T) bool
    return x, mask


def skip_reason(name: str, causal: bool) -> str | None:
    caps = attention.get(name).caps
    where = attention.get(name).__module__
    if not caps.exportable:
        return f"{name}: caps.exportable=False (declared in {where})"
    if causal and not caps.causal:
        return f"{name}: caps.causal=False, no causal form to export"
    if not causal and not caps.noncausal:
        return f"{name}: caps.noncausal=False, causal-only, no non-causal form to export"
    if not caps.exact:
        return f"{name}: caps.exact=False, outputs are random per call so ONNX cannot match"
    return None


def export_and_parity(name: str, causal: bool, workdir: str | Path | None = None, **options) -> None:
    """Export type `name` (with its `options`) to ONNX in `workdir` (a temporary folder by default) and
    check ORT parity."""
    reason = skip_reason(name, causal)
    if reason:
        raise Skipped(reason)
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="nasgraph-attn-") as tmp:
            return export_and_parity(name, causal, tmp, **options)
    caps = attention.get(name).caps
    module = build(name, causal, **options).eval()
    example = padded_inputs(*EXPORT_SHAPE, seed=0)
    checks = [padded_inputs(B, T, seed=i + 1) for i, (B, T) in enumerate(CHECK_SHAPES)]
    path, report = export_verified(
        module, example, Path(workdir) / f"{name}.onnx", checks, atol=ATOL,
        input_names=["x", "mask"], output_names=["y"], dynamic_axes=batch_seq_axes("x", "mask"),
        axis_max={"seq": LONGEST} if caps.bounded else None, opset=18, fallback=False,
        metadata={"attention": name, "causal": str(causal)})
    assert report.ok and len(report.cases) == len(CHECK_SHAPES), report.summary()
    meta = read_metadata(path)
    assert meta["nasgraph.exporter"] == "dynamo" and int(meta["nasgraph.opset"]) >= 18, meta
    import onnx

    graph = onnx.load(str(path)).graph
    inputs = {i.name: [d.dim_param for d in i.type.tensor_type.shape.dim] for i in graph.input}
    assert inputs["x"][:2] == ["batch", "seq"], f"input x is not (batch, seq, ...): {inputs}"
    if caps.padding_mask:
        assert inputs.get("mask") == ["batch", "seq"], f"mask input missing or static: {inputs}"


ONNX_CHECK = Check("onnx", export_and_parity, "exports to ONNX and matches ONNX Runtime (atol 1e-4)", "each")
